"""The one typing rule for attribute values typed as text (domain.attributes)."""

from __future__ import annotations

import pytest
from starlette.datastructures import FormData

from tidings.domain.attributes import cell_value, flag_of, typed_value
from tidings.domain.customers import parse_customers_csv
from tidings.web import rules_form


@pytest.mark.parametrize(("text", "cell", "typed"), [
    ("true", True, True),
    ("FALSE", False, False),
    ("True", True, True),
    ("42", "42", 42),
    ("-1.5", "-1.5", -1.5),
    ("0", "0", 0),
    ("0.25", "0.25", 0.25),
    ("0042", "0042", "0042"),  # a zip code keeps its leading zeros
    ("1234567890123456", "1234567890123456", "1234567890123456"),  # 16 digits: an identifier
    ("1e5", "1e5", "1e5"),
    ("1,5", "1,5", "1,5"),
    ("2024-05-01", "2024-05-01", "2024-05-01"),
    ("yes", "yes", "yes"),
    ("\u017false", "\u017false", "\u017false"),  # the long s folds to s in Python only
])
def test_text_becomes_the_value_the_table_says(text, cell, typed):
    assert cell_value(text) == cell and type(cell_value(text)) is type(cell)
    assert typed_value(text) == typed and type(typed_value(text)) is type(typed)


def test_only_true_and_false_are_flags():
    assert [flag_of(t) for t in ("true", "tRuE", "false", "yes", "1", " true", "")] == [
        True, True, False, None, None, None, None]


def test_csv_cells_are_typed_by_the_rule():
    data = b"email,vip,zip,points\nann@example.org,TRUE,0042,120\nbob@example.org,false,10115,\n"

    result = parse_customers_csv(data)

    assert [c.attributes for _, c in result.rows] == [
        {"vip": True, "zip": "0042", "points": "120"},
        {"vip": False, "zip": "10115"},
    ]


def builder_value(op: str, value: str, key: str = "k") -> object:
    form = FormData([("match", "all"), ("negate", ""), ("field", "attributes"), ("key", key),
                     ("op", op), ("value", value)])
    rules = rules_form.rules_of(rules_form.from_form(form))
    return rules["all"][0]["value"]


def test_the_builder_types_attribute_values_by_the_same_rule():
    assert builder_value("eq", "TRUE") is True
    assert builder_value("gt", "100") == 100
    assert builder_value("eq", "0042") == "0042"
    assert builder_value("in", "0042, 01067") == ["0042", "01067"]
    assert builder_value("contains", "101") == "101"
    assert builder_value("lt", "2024-05-01") == "2024-05-01"
