"""What the columns of a customer file mean: suggestions, choices, consent. Pure."""

from __future__ import annotations

import pytest

from tidings.domain import columns
from tidings.domain.attributes import kind_of
from tidings.domain.customers import CSV_COLUMNS
from tidings.errors import InvalidInput


def test_the_field_targets_are_the_csv_columns_of_a_customer():
    assert columns.FIELD_TARGETS == CSV_COLUMNS


def test_without_a_mapping_a_file_is_read_as_the_contract_says():
    header = ["E-mail", "email", "First Name", "city", ""]
    assert columns.default_targets(header) == [
        "attributes.E-mail", "email", "first_name", "attributes.city", "ignore"]


def test_the_import_page_suggests_other_names_and_consent_columns():
    shopify = ["Customer ID", "First Name", "Last Name", "Email", "Accepts Email Marketing",
               "Phone", "Accepts SMS Marketing", "Total Spent", "Tags"]
    assert columns.suggested_targets(shopify) == [
        "external_id", "first_name", "last_name", "email", "email_consent", "phone",
        "sms_consent", "attributes.Total Spent", "attributes.Tags"]
    assert columns.suggested_targets(["E-mail", "Surname", "Newsletter", "Mobile"]) == [
        "email", "last_name", "email_consent", "phone"]
    # a second column that would repeat a field stays an attribute
    assert columns.suggested_targets(["email", "E-mail"]) == ["email", "attributes.E-mail"]


def test_choices_replace_the_targets_of_the_columns_they_name():
    found = columns.targets(["Mail", "Opt in", "Note"], {"Mail": "email", "Opt in": "email_consent",
                                                         "Note": "ignore"})
    assert found == ["email", "email_consent", "ignore"]
    assert columns.targets(["email", "x"], {"x": "attributes. Shoe size "}) == [
        "email", "attributes.Shoe size"]


@pytest.mark.parametrize(("choices", "words"), [
    ({"Nope": "email"}, "has no column"),
    ({"Mail": "e-mail"}, "unknown target"),
    ({"Mail": "attributes."}, "unknown target"),
    ({"Mail": "email", "opt": "email_consent"}, "both give email_status"),
    ({"Mail": "phone"}, 'needs an "email" or an "external_id"'),
])
def test_choices_that_do_not_fit_are_refused(choices, words):
    with pytest.raises(InvalidInput) as info:
        columns.targets(["Mail", "status", "opt"], {"status": "email_status"} | choices)
    assert words in info.value.message


def test_api_pairs_split_at_the_last_equals_sign():
    assert columns.parse_choices(["a=b=email", " Opt in = email_consent "]) == {
        "a=b": "email", "Opt in": "email_consent"}
    with pytest.raises(InvalidInput):
        columns.parse_choices(["email"])


@pytest.mark.parametrize(("cell", "status"), [
    ("yes", None), ("YES", None), ("1", None), ("", None), (" no ", "unsubscribed"),
    ("False", "unsubscribed"), ("0", "unsubscribed"),
])
def test_consent_no_unsubscribes_and_yes_leaves_the_status(cell, status):
    assert columns.consent(cell, column="Accepts") == status


def test_a_consent_cell_that_is_neither_yes_nor_no_names_its_column():
    with pytest.raises(InvalidInput) as info:
        columns.consent("maybe", column="Accepts Email Marketing")
    assert info.value.message == "Column 'Accepts Email Marketing': 'maybe' is neither yes nor no."


@pytest.mark.parametrize(("values", "kind"), [
    ([True, "false", None], "boolean"),
    ([3, "0042", -1.5], "number"),
    (["2024-05-01", "2023-12-31T10:00:00+02:00"], "date"),
    (["Riga", 3], "text"),
    ([["a"], ["b", "c"]], "list"),
    ([None], "text"),
])
def test_an_attribute_kind_is_read_from_the_values_customers_have(values, kind):
    assert kind_of(values) == kind
