"""Segment rules: parsing, validation messages and the reference meaning. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest

from tidings.domain.segments import (
    FIELDS,
    All,
    Any,
    DaysAgo,
    Everyone,
    Leaf,
    Not,
    Op,
    evaluate,
    has_relative_dates,
    parse_rules,
)
from tidings.errors import InvalidInput
from tidings.store.segments import COLUMNS


def leaf(field: str, op: str, value: object) -> dict:
    return {"field": field, "op": op, "value": value}


def refusal(rules: object) -> str:
    with pytest.raises(InvalidInput) as info:
        parse_rules(rules)
    assert info.value.message.startswith(f"{info.value.field}: ")
    return info.value.message


# --- parsing ------------------------------------------------------------------------


def test_an_empty_object_means_everyone():
    assert parse_rules({}) == Everyone()


def test_a_nested_tree_parses_into_frozen_rules():
    rules = {
        "all": [
            leaf("first_name", "eq", "Ann"),
            {"any": [leaf("orders_count", "gte", 2), {"not": leaf("phone", "exists", True)}]},
            leaf("attributes.city", "in", ["Paris", "Lyon"]),
        ]
    }

    assert parse_rules(rules) == All(
        rules=(
            Leaf(field="first_name", op=Op.EQ, value="Ann"),
            Any(
                rules=(
                    Leaf(field="orders_count", op=Op.GTE, value=2),
                    Not(rule=Leaf(field="phone", op=Op.EXISTS, value=True)),
                )
            ),
            Leaf(field="attributes.city", op=Op.IN, value=("Paris", "Lyon")),
        )
    )


def test_datetimes_need_an_offset_and_a_bare_date_is_utc_midnight():
    assert parse_rules(leaf("created_at", "gte", "2024-05-01")).value == datetime(
        2024, 5, 1, tzinfo=UTC
    )
    assert parse_rules(leaf("last_order_at", "lt", "2024-05-01T09:00:00+02:00")).value == datetime(
        2024, 5, 1, 9, tzinfo=timezone(timedelta(hours=2))
    )
    assert parse_rules(leaf("created_at", "lt", "2024-05-01T09:00Z")).value == datetime(
        2024, 5, 1, 9, tzinfo=UTC
    )
    assert refusal(leaf("created_at", "lt", "2024-05-01T09:00:00")) == (
        "rules: \"created_at\" needs a timezone offset (like +02:00 or Z) in '2024-05-01T09:00:00'"
    )


def test_email_values_are_lowercased_as_emails_are_stored():
    assert parse_rules(leaf("email", "in", ["Ann@Example.com"])).value == ("ann@example.com",)


@pytest.mark.parametrize(
    ("rules", "message"),
    [
        ([], "rules: a rule must be an object"),
        ({"all": {}}, "rules.all: needs a non-empty list of rules"),
        ({"any": []}, "rules.any: needs a non-empty list of rules"),
        (
            {"all": [{}, {}, {"any": [leaf("email", "like", "%a%")]}]},
            'rules.all[2].any[0]: unknown operator "like"; operators are eq, ne, lt, lte, gt, gte, '
            "in, contains, exists, within_days",
        ),
        (
            {"not": {"not": leaf("nickname", "eq", "A")}},
            'rules.not.not: unknown field "nickname"; fields are email, first_name, last_name, '
            "phone, external_id, email_status, sms_status, created_at, last_order_at, "
            "orders_count, orders_total, last_opened_at, last_clicked_at, received_mailing, "
            "opened_mailing, clicked_mailing and attributes.KEY",
        ),
        (
            {"all": [leaf("email", "eq", "a")], "any": []},
            'rules: a rule with "all" cannot also have "any"',
        ),
        ({"field": "email", "op": "eq"}, 'rules: a rule with "field", "op" and "value" is missing'),
        ({**leaf("email", "eq", "a"), "negate": True}, 'rules: unknown key "negate"'),
        (leaf(["email"], "eq", "a"), 'rules: "field" must be a string'),
        (leaf("attributes.a-b", "eq", "x"), 'rules: attribute field "attributes.a-b" must be'),
        (leaf("attributes.", "eq", "x"), 'rules: attribute field "attributes." must be'),
        (
            leaf("orders_count", "contains", "1"),
            'rules: operator "contains" does not apply to number field "orders_count"',
        ),
        (
            leaf("created_at", "contains", "2024"),
            'rules: operator "contains" does not apply to datetime field "created_at"',
        ),
        (leaf("orders_total", "gt", "10"), 'rules: "orders_total" gt needs a number, got "10"'),
        (leaf("orders_total", "gt", True), 'rules: "orders_total" gt needs a number, got true'),
        (leaf("first_name", "eq", 3), 'rules: "first_name" eq needs a string, got 3'),
        (leaf("first_name", "in", []), 'rules: "in" needs a non-empty list of values, got a list'),
        (leaf("first_name", "in", "Ann"), 'rules: "in" needs a non-empty list of values, got "A'),
        (leaf("first_name", "in", ["Ann", None]), 'rules: "first_name" in needs a string, got nul'),
        (leaf("phone", "exists", "yes"), 'rules: "exists" needs true or false, got "yes"'),
        (leaf("attributes.tier", "contains", 1), 'rules: "attributes.tier" contains needs a str'),
        (leaf("attributes.tier", "gt", True), 'rules: "attributes.tier" gt needs a string or a'),
        (leaf("attributes.tier", "eq", {"a": 1}), 'rules: "attributes.tier" eq needs a string, a'),
        (leaf("attributes.tier", "in", ["1", 1]), 'rules: "in" needs values of one type'),
        (leaf("created_at", "gt", "last week"), 'rules: "created_at" needs an ISO 8601 date-time'),
        (leaf("created_at", "gt", "2024-02-30"), 'rules: "created_at" has an invalid date'),
        (leaf("created_at", "within_days", -1),
         'rules: "created_at" within_days needs a whole number of days from 0 to 36500, got -1'),
        (leaf("created_at", "within_days", 2.5), 'rules: "created_at" within_days needs a whole'),
        (leaf("last_order_at", "lt", {"days_ago": "x"}), 'rules: "last_order_at" lt needs a whole'),
        (leaf("last_order_at", "eq", {"days_ago": 3}), 'rules: "days_ago" needs one of lt, lte'),
        (leaf("last_order_at", "lt", {"days_ago": 3, "x": 1}), 'rules: "days_ago" must be alone'),
        (leaf("orders_count", "lt", {"days_ago": 3}), 'rules: "days_ago" applies to date fields'),
        (leaf("first_name", "within_days", 3),
         'rules: operator "within_days" does not apply to string field "first_name"'),
        (leaf("attributes.since", "within_days", 3),
         'rules: operator "within_days" does not apply to attribute field "attributes.since"'),
        (leaf("received_mailing", "gt", 3),
         'rules: operator "gt" does not apply to mailing field "received_mailing"'),
        (leaf("opened_mailing", "eq", "spring"), 'rules: "opened_mailing" eq needs a mailing id'),
        (leaf("opened_mailing", "in", [1, True]), 'rules: "opened_mailing" in needs a mailing id'),
    ],
)
def test_a_bad_rule_is_refused_with_its_path(rules: object, message: str):
    assert refusal(rules).startswith(message)


def test_the_error_field_is_the_path_of_the_bad_rule():
    with pytest.raises(InvalidInput) as info:
        parse_rules({"any": [{}, {"not": leaf("email", "eq", 1)}]})

    assert info.value.field == "rules.any[1].not"
    assert info.value.status == 422


def test_a_tree_nested_too_deeply_is_refused():
    rules: dict = {}
    for _ in range(25):
        rules = {"not": rules}

    assert "nested more than 20 levels" in refusal(rules)


def test_too_many_values_are_refused():
    assert "at most 10000 values" in refusal(leaf("first_name", "in", ["a"] * 10_001))


def test_every_rule_field_has_a_column_and_no_column_lacks_a_field():
    assert set(FIELDS) == set(COLUMNS)


# --- meaning ------------------------------------------------------------------------

ANN = {
    "email": "ann@example.com",
    "first_name": "Ann",
    "last_name": None,
    "orders_count": 3,
    "orders_total": Decimal("10.10"),
    "created_at": datetime(2024, 1, 1, 0, 30, tzinfo=UTC),
    "last_order_at": None,
    "attributes": {"city": "Paris", "age": 34, "points": "120", "vip": True, "none": None},
}


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        ({}, True),
        (leaf("first_name", "eq", "Ann"), True),
        (leaf("first_name", "eq", "ann"), False),
        (leaf("first_name", "contains", "AN"), True),
        (leaf("first_name", "lt", "B"), True),
        (leaf("first_name", "lt", "a"), True),  # by code point: "A" < "a"
        (leaf("last_name", "ne", "Lee"), True),
        (leaf("last_name", "eq", "Lee"), False),
        ({"not": leaf("last_name", "eq", "Lee")}, True),
        (leaf("last_name", "exists", False), True),
        (leaf("orders_total", "eq", 10.1), True),
        (leaf("orders_count", "in", [1, 3]), True),
        (leaf("created_at", "lt", "2024-01-01T01:00:00+01:00"), False),
        (leaf("created_at", "gte", "2024-01-01"), True),
        (leaf("last_order_at", "lt", "2030-01-01"), False),
        (leaf("attributes.city", "eq", "Paris"), True),
        (leaf("attributes.age", "eq", "34"), False),  # a string compares string attributes
        (leaf("attributes.age", "ne", "34"), True),
        (leaf("attributes.age", "gt", 30), True),
        (leaf("attributes.points", "gte", 120), True),  # a numeric string compares as a number
        (leaf("attributes.points", "eq", "120"), True),
        (leaf("attributes.city", "gt", 0), False),
        (leaf("attributes.vip", "eq", True), True),
        (leaf("attributes.vip", "eq", 1), False),
        (leaf("attributes.none", "exists", True), False),
        (leaf("attributes.missing", "ne", "x"), True),
        (
            {
                "all": [
                    leaf("email", "contains", "@EXAMPLE"),
                    {"not": leaf("phone", "exists", True)},
                ]
            },
            True,
        ),
        ({"any": [leaf("email", "eq", "bob@example.com"), leaf("orders_count", "gt", 5)]}, False),
    ],
)
def test_evaluate_gives_the_reference_meaning(rules: dict, expected: bool):
    assert evaluate(parse_rules(rules), ANN) is expected


def test_a_relative_date_stays_relative_in_the_rule_and_counts_from_now():
    rules = {"all": [leaf("created_at", "lt", {"days_ago": 365}),
                     leaf("last_order_at", "within_days", 90)]}
    rule = parse_rules(rules)
    assert rule == All(rules=(Leaf(field="created_at", op=Op.LT, value=DaysAgo(days=365)),
                              Leaf(field="last_order_at", op=Op.WITHIN_DAYS, value=90)))
    assert has_relative_dates(rule) and not has_relative_dates(parse_rules(leaf("email", "eq", "a")))
    buyer = {"created_at": datetime(2023, 1, 1, tzinfo=UTC),
             "last_order_at": datetime(2024, 5, 1, tzinfo=UTC)}
    assert evaluate(rule, buyer, now=datetime(2024, 6, 1, tzinfo=UTC))
    assert not evaluate(rule, buyer, now=datetime(2024, 8, 1, tzinfo=UTC))  # 92 days after it
    assert not evaluate(rule, buyer, now=datetime(2024, 4, 1, tzinfo=UTC))  # not yet ordered


def test_mailing_fields_are_sets_of_mailings():
    customer = {"received_mailing": {1, 2}, "opened_mailing": {2}}
    assert evaluate(parse_rules(leaf("received_mailing", "eq", 1)), customer)
    assert evaluate(parse_rules(leaf("opened_mailing", "ne", 1)), customer)
    assert evaluate(parse_rules(leaf("opened_mailing", "in", [1, 2])), customer)
    assert not evaluate(parse_rules(leaf("clicked_mailing", "exists", True)), customer)
    assert evaluate(parse_rules(leaf("clicked_mailing", "ne", 7)), {})
