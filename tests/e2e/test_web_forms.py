"""The rule builder's translation between form fields and rule JSON (no I/O)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest
from starlette.datastructures import FormData

from tidings.domain.segments import parse_rules
from tidings.domain.templates import compile_email
from tidings.errors import InvalidInput
from tidings.web import rules_form, wording
from tidings.web.rules_form import Builder, Row


def form(match: str, *rows: tuple[str, str, str, str, str], **extra: str) -> FormData:
    items: list[tuple[str, str]] = [("match", match)]
    for negate, field, key, op, value in rows:
        items += [("negate", negate), ("field", field), ("key", key), ("op", op), ("value", value)]
    return FormData(items + list(extra.items()))


def test_rows_become_a_group_with_typed_values() -> None:
    builder = rules_form.from_form(form(
        "all",
        ("", "attributes", "city", "eq", "Riga"),
        ("not", "orders_count", "", "gte", "2"),
        ("", "attributes", "vip", "eq", "true"),
        ("", "email", "", "in", "a@x.io, b@x.io"),
        ("", "phone", "", "exists", "no"),
        ("", "first_name", "", "eq", ""),  # an empty row is left out
    ))
    assert rules_form.rules_of(builder) == {"all": [
        {"field": "attributes.city", "op": "eq", "value": "Riga"},
        {"not": {"field": "orders_count", "op": "gte", "value": 2}},
        {"field": "attributes.vip", "op": "eq", "value": True},
        {"field": "email", "op": "in", "value": ["a@x.io", "b@x.io"]},
        {"field": "phone", "op": "exists", "value": False},
    ]}
    parse_rules(rules_form.rules_of(builder))


def test_no_rows_is_everyone_and_none_of_is_not_any() -> None:
    assert rules_form.rules_of(rules_form.from_form(form("any"))) == {}
    builder = rules_form.from_form(form("none", ("", "first_name", "", "eq", "Ann")))
    assert rules_form.rules_of(builder) == {
        "not": {"any": [{"field": "first_name", "op": "eq", "value": "Ann"}]}}


@pytest.mark.parametrize("rules", [
    {},
    {"field": "email", "op": "contains", "value": "@shop"},
    {"any": [{"field": "attributes.city", "op": "in", "value": ["Riga", "Lyon"]},
             {"not": {"field": "orders_total", "op": "lt", "value": 10.5}}]},
    {"not": {"any": [{"field": "last_order_at", "op": "exists", "value": True}]}},
])
def test_stored_rules_that_fit_the_builder_come_back_unchanged(rules: Any) -> None:
    builder = rules_form.from_rules(rules)
    assert builder.mode == "builder"
    expected = {"all": [rules]} if "field" in rules else rules
    assert rules_form.rules_of(builder) == expected


def test_nested_groups_are_edited_as_json() -> None:
    rules = {"all": [{"any": [{"field": "email", "op": "exists", "value": True}]}]}
    builder = rules_form.from_rules(rules)
    assert builder.mode == "json"
    assert rules_form.rules_of(builder) == rules


def test_a_rule_error_is_shown_on_its_row() -> None:
    builder = Builder(rows=(Row(field="email"), Row(field="orders_count", op="gt", value="x")))
    with pytest.raises(InvalidInput) as caught:
        parse_rules(rules_form.rules_of(builder))
    shown = builder.with_error(caught.value)
    assert shown.rows[0].error is None
    assert shown.rows[1].error == 'Number of orders needs a number, got "x"'


@pytest.mark.parametrize(("rules", "said"), [
    ({"all": [{"field": "email", "op": "eq", "value": "a"},
              {"field": "orders_count", "op": "gte", "value": "x"}]},
     'Condition 2: Number of orders needs a number, got "x"'),
    ({"all": [{"field": "orders_count", "op": "contains", "value": "x"}]},
     "Condition 1: “contains” does not apply to number of orders"),
    ({"all": [{"field": "attributes.my city", "op": "eq", "value": "x"}]},
     "Condition 1: An attribute name may hold only letters, digits and _, not “my city”"),
    ({"all": [{"field": "last_order_at", "op": "gt", "value": "yesterday"}]},
     "Condition 1: Last order needs a date like 2024-05-01, or a date and time with its "
     'offset from UTC, like 2024-05-01T09:00+02:00, got "yesterday"'),
    ({"not": {"any": [{"field": "email", "op": "in", "value": []}]}},
     "Condition 1: “is one of” needs at least one value"),
    ({"all": [{"field": "attributes.size", "op": "in", "value": ["S", 1]}]},
     "Condition 1: The values of “is one of” must be all text or all numbers"),
    ({"all": [{"field": "attributes.vip", "op": "lt", "value": True}]},
     "Condition 1: The attribute “vip” needs a string or a number, got true"),
    ({"all": [{"any": [{"field": "email", "op": "eq", "value": 1}]}]},
     "Condition 1.1: Email needs a string, got 1"),
])
def test_a_rule_error_names_the_condition_and_field_as_the_builder_shows_them(
        rules: Any, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rules(rules)
    assert caught.value.message.startswith("rules.")  # the API's words stay the API's
    assert rules_form.rule_error(caught.value) == said
    assert wording.say(caught.value) == said


def kinded(*rows: tuple[str, str, str, str, str, str]) -> FormData:
    """A builder form whose rows carry the kind the page drew them with."""
    items: list[tuple[str, str]] = [("match", "all")]
    for negate, field, key, op, value, kind in rows:
        items += [("negate", negate), ("field", field), ("key", key), ("op", op),
                  ("value", value), ("kind", kind)]
    return FormData(items)


def test_the_plain_word_forms_become_relative_dates_and_typed_values() -> None:
    builder = rules_form.from_form(kinded(
        ("", "last_order_at", "", "within_days", "90", "datetime"),
        ("", "created_at", "", "more_than_days", "365", "datetime"),
        ("", "orders_count", "", "absent", "", "number"),
        ("", "last_opened_at", "", "present", "", "datetime"),
        ("", "attributes.vip", "", "eq", "true", "boolean"),
        ("", "attributes.zip", "", "eq", "0042", "text"),
        ("", "attributes.size", "", "gte", "38", "number"),
        ("not", "received_mailing", "", "eq", "7", "mailing"),
        ("", "attributes.since", "", "lt", "2024-05-01", "date"),
    ))
    assert rules_form.rules_of(builder) == {"all": [
        {"field": "last_order_at", "op": "within_days", "value": 90},
        {"field": "created_at", "op": "lt", "value": {"days_ago": 365}},
        {"field": "orders_count", "op": "exists", "value": False},
        {"field": "last_opened_at", "op": "exists", "value": True},
        {"field": "attributes.vip", "op": "eq", "value": True},
        {"field": "attributes.zip", "op": "eq", "value": "0042"},  # a text attribute stays text
        {"field": "attributes.size", "op": "gte", "value": 38},
        {"not": {"field": "received_mailing", "op": "eq", "value": 7}},
        {"field": "attributes.since", "op": "lt", "value": "2024-05-01"},
    ]}
    parse_rules(rules_form.rules_of(builder))
    again = rules_form.from_rules(rules_form.rules_of(builder), attributes=[
        ("vip", "boolean"), ("zip", "text"), ("size", "number"), ("since", "date")])
    assert again.mode == "builder" and again.rows == tuple(
        replace(row, value="" if row.op in ("present", "absent") else row.value)
        for row in builder.rows)


def test_each_kind_is_drawn_with_its_own_control() -> None:
    attributes = [("vip", "boolean"), ("since", "date")]
    mailings = [(7, "Spring sale (email)")]

    def drawn(field: str, op: str) -> tuple[str, tuple[str, ...]]:
        shown = rules_form.view(Row(field=field, op=op), attributes=attributes, mailings=mailings)
        return shown.control, tuple(value for value, _ in shown.options)

    assert drawn("last_order_at", "within_days") == ("days", ())
    assert drawn("last_order_at", "gte") == ("date", ())
    assert drawn("attributes.since", "lt") == ("date", ())
    assert drawn("orders_total", "gt") == ("number", ())
    assert drawn("attributes.vip", "eq") == ("select", ("true", "false"))
    assert drawn("email_status", "eq")[1][:2] == ("subscribed", "unsubscribed")
    assert drawn("opened_mailing", "eq") == ("select", ("", "7"))
    assert drawn("last_order_at", "absent") == ("none", ())
    labels = dict(rules_form.view(Row(field="last_order_at", op="within_days")).operators)
    assert labels["within_days"] == "is in the last … days" and labels["absent"] == "never happened"


def test_a_row_whose_field_changed_takes_an_operator_of_the_new_kind() -> None:
    moved = rules_form.adjusted(Row(field="last_order_at", op="contains", value="x"))
    assert (moved.op, moved.value, moved.kind) == ("within_days", "", "datetime")
    kept = rules_form.adjusted(Row(field="orders_total", op="gt", value="10"))
    assert (kept.op, kept.value) == ("gt", "10")


@pytest.mark.parametrize(("rules", "said"), [
    ({"all": [{"field": "last_order_at", "op": "within_days", "value": "ninety"}]},
     'Condition 1: Last order needs a number of days: a whole number from 0 to '
     '36500, got "ninety"'),
    ({"all": [{"field": "received_mailing", "op": "eq", "value": ""}]},
     'Condition 1: Mailings received needs a mailing: choose one, not ""'),
    ({"all": [{"field": "first_name", "op": "within_days", "value": 3}]},
     "Condition 1: “is in the last … days” does not apply to first name"),
])
def test_errors_of_the_new_forms_are_in_the_builder_s_words(rules: Any, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_rules(rules)
    assert wording.say(caught.value) == said


def test_unreadable_json_names_the_line() -> None:
    with pytest.raises(InvalidInput, match=r"not valid JSON.*line 2"):
        rules_form.rules_of(Builder(mode="json", json_text='{\n  "all": [,]}'))


@pytest.mark.parametrize(("html", "said"), [
    ("{% if customer.first_name %}", "The HTML has a syntax error on line 1: "),
    ("<p>{{ customer._secret }}</p>", "The HTML uses '_secret' on line 1; "),
    ("<style>p { color: {{ c }} }</style><p>x</p>", "The HTML has a Jinja tag inside <style> "),
])
def test_a_template_error_names_the_part_as_the_editor_labels_it(html: str, said: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        compile_email(subject="Hi", html=html, text=None)
    assert caught.value.message.startswith("The html template")  # the API's words stay the API's
    assert wording.say(caught.value).startswith(said)
