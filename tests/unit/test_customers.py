"""Customer validation and CSV parsing: pure, no I/O."""

from __future__ import annotations

import pytest

from tidings.domain.customers import (
    CustomerInput,
    CustomerStatus,
    parse_customers_csv,
    validate_customer,
)
from tidings.errors import InvalidInput


def invalid(data: object) -> InvalidInput:
    with pytest.raises(InvalidInput) as info:
        validate_customer(data)  # type: ignore[arg-type]
    return info.value


# --- one customer -------------------------------------------------------------------


def test_a_valid_customer_comes_back_in_normal_form():
    customer = validate_customer(
        {
            "email": "  Ann.Lee@Example.COM ",
            "phone": "+44 (20) 7946-0958",
            "first_name": " Ann ",
            "last_name": "",
            "external_id": 42,
            "attributes": {"city": "Paris", "age": 34, "vip": True, "tags": ["a", 1], "x": None},
            "email_status": "Unsubscribed",
        }
    )

    assert customer == CustomerInput(
        email="ann.lee@example.com",
        phone="+442079460958",
        first_name="Ann",
        last_name=None,
        external_id="42",
        attributes={"city": "Paris", "age": 34, "vip": True, "tags": ["a", 1], "x": None},
        email_status=CustomerStatus.UNSUBSCRIBED,
        sms_status=None,
    )


def test_an_external_id_alone_identifies_a_customer():
    assert validate_customer({"external_id": "c-1"}) == CustomerInput(external_id="c-1")


def test_a_customer_needs_an_email_or_an_external_id():
    error = invalid({"first_name": "Ann", "email": "  "})

    assert error.field == "email"
    assert '"email" or an "external_id"' in error.message


def test_unknown_fields_are_refused_by_name():
    error = invalid({"email": "a@example.com", "nickname": "A", "age": 3})

    assert error.field == "age"
    assert error.message.startswith('Unknown customer fields "age", "nickname"')
    assert '"attributes"' in error.message


def test_a_customer_must_be_an_object():
    assert invalid(["a@example.com"]).message == "A customer must be a JSON object."


@pytest.mark.parametrize("email", ["not-an-email", "a@", "a b@example.com", "a@@example.com"])
def test_an_invalid_email_names_the_email_field(email: str):
    error = invalid({"email": email})

    assert error.field == "email"
    assert error.message.startswith(f'"email" {email!r} is not a valid address')


@pytest.mark.parametrize(
    ("phone", "normal"),
    [
        ("+1 (212) 555-0123", "+12125550123"),
        ("0044 20 7946 0958", "+442079460958"),
        ("+7.916.123.45.67", "+79161234567"),
        ("+٤٤٢٠٧٩٤٦٠٩٥٨", "+442079460958"),  # other scripts' digits are digits
    ],
)
def test_phones_are_normalised_to_e164(phone: str, normal: str):
    assert validate_customer({"email": "a@example.com", "phone": phone}).phone == normal


@pytest.mark.parametrize(
    "phone", ["+12345", "+1234567890123456", "+44 20 ABC", "++4420794609",
              "+1 (555) 010-0199"]
)
def test_a_phone_that_is_not_a_valid_number_is_refused(phone: str):
    error = invalid({"email": "a@example.com", "phone": phone})

    assert error.field == "phone"
    assert "is not a valid phone number" in error.message


def test_without_a_region_a_national_number_is_refused():
    error = invalid({"email": "a@example.com", "phone": "79161234567"})

    assert error.field == "phone"
    assert "not in international form" in error.message


def test_statuses_must_be_known():
    error = invalid({"email": "a@example.com", "sms_status": "gone"})

    assert error.field == "sms_status"
    assert error.message == (
        "\"sms_status\" must be one of subscribed, unsubscribed, bounced, complained; got 'gone'."
    )


@pytest.mark.parametrize(
    ("attributes", "field"),
    [
        (["a"], "attributes"),
        ({"": 1}, "attributes"),
        ({"nested": {"a": 1}}, "attributes.nested"),
        ({"deep": [[1]]}, "attributes.deep"),
        ({"nan": float("nan")}, "attributes.nan"),
    ],
)
def test_attributes_must_map_strings_to_scalars_or_lists(attributes: object, field: str):
    assert invalid({"email": "a@example.com", "attributes": attributes}).field == field


@pytest.mark.parametrize("name", ["first_name", "last_name", "external_id"])
def test_text_fields_must_be_strings_of_at_most_255_characters(name: str):
    assert invalid({"email": "a@example.com", name: ["x"]}).message == f'"{name}" must be a string.'
    assert "longer than 255" in invalid({"email": "a@example.com", name: "x" * 256}).message


# --- CSV ----------------------------------------------------------------------------


def test_a_utf8_file_with_a_bom_and_commas_is_parsed():
    data = "\ufeffEmail,First Name,city\nann@example.com,Ann,Paris\n".encode()

    result = parse_customers_csv(data)

    assert result.encoding == "utf-8-sig"
    assert result.delimiter == ","
    assert result.rows == [
        (2, CustomerInput(email="ann@example.com", first_name="Ann", attributes={"city": "Paris"}))
    ]
    assert result.errors == []


def test_a_cp1251_file_with_semicolons_is_detected_and_decoded():
    text = (
        "email;first_name;last_name;Город\n"
        "ivan@example.com;Иван;Петров;Москва\n"
        "olga@example.com;Ольга;Смирнова;Санкт-Петербург\n"
        "petr@example.com;Пётр;Иванов;Новосибирск\n"
    )

    result = parse_customers_csv(text.encode("cp1251"))

    assert result.delimiter == ";"
    assert result.errors == []
    assert [(line, c.first_name, c.attributes) for line, c in result.rows] == [
        (2, "Иван", {"Город": "Москва"}),
        (3, "Ольга", {"Город": "Санкт-Петербург"}),
        (4, "Пётр", {"Город": "Новосибирск"}),
    ]


def test_a_latin1_file_is_decoded():
    data = "email,first_name\njose@example.com,José\nzoe@example.com,Zoë\n".encode("latin-1")

    result = parse_customers_csv(data)

    assert [c.first_name for _, c in result.rows] == ["José", "Zoë"]


@pytest.mark.parametrize(
    "line",
    ["mueller@example.com,Jürgen,Müller,café",
     "pena@example.com,Iñigo,Peña,Logroño",
     "zoe@example.com,Zoë,Lefèvre,Besançon"],
)
def test_a_one_line_cp1252_file_is_read_as_cp1252(line):
    data = f"email,first_name,last_name,favourite\n{line}\n".encode("cp1252")

    result = parse_customers_csv(data)

    assert result.encoding == "cp1252"
    _, first, last, favourite = line.split(",")
    assert [(c.first_name, c.last_name, c.attributes) for _, c in result.rows] == [
        (first, last, {"favourite": favourite})]


def test_a_stated_encoding_wins_over_detection():
    data = "email,last_name\npena@example.com,Peña\n".encode("cp1252")

    result = parse_customers_csv(data, encoding="cp1250")

    assert result.encoding == "cp1250"
    assert [c.last_name for _, c in result.rows] == ["Peńa"]


def test_a_stated_encoding_and_delimiter_are_used():
    data = "email|first_name\nann@example.com|Ann\n".encode("utf-16")

    result = parse_customers_csv(data, encoding="utf-16", delimiter="|")

    assert [c.first_name for _, c in result.rows] == ["Ann"]


@pytest.mark.parametrize("delimiter", [";", "\t", "|", ","])
def test_the_delimiter_is_detected(delimiter: str):
    rows = [
        ["email", "first_name", "phone", "note"],
        ["ann@example.com", "Ann", "+44 20 7946 0958", "likes, commas"],
        ["bob@example.com", "Bob", "", "x"],
    ]
    text = "\n".join(delimiter.join(f'"{c}"' if "," in c else c for c in row) for row in rows)

    result = parse_customers_csv(text.encode())

    assert result.delimiter == delimiter
    assert [c.email for _, c in result.rows] == ["ann@example.com", "bob@example.com"]
    assert result.rows[0][1].attributes == {"note": "likes, commas"}


def test_a_bad_line_is_reported_and_the_good_lines_are_kept():
    text = (
        "email,phone,email_status,tier\n"
        "ann@example.com,+33 6 12 34 56 78,subscribed,gold\n"
        "not-an-email,,,\n"
        "\n"
        "cy@example.com,12,,\n"
        "dee@example.com,,maybe,\n"
        ",,,silver\n"
        "eve@example.com,,,,,\n"
        "fay@example.com,,,,x\n"
    )

    result = parse_customers_csv(text.encode())

    assert [(line, c.email) for line, c in result.rows] == [
        (2, "ann@example.com"),
        (8, "eve@example.com"),
    ]
    assert result.rows[1][1].attributes == {}
    assert [line for line, _ in result.errors] == [3, 5, 6, 7, 9]
    messages = dict(result.errors)
    assert messages[3].startswith('"email"')
    assert messages[5].startswith('"phone"')
    assert messages[6].startswith('"email_status"')
    assert '"email" or an "external_id"' in messages[7]
    assert messages[9] == "The line has 5 fields but the header has 4."


def test_quoted_fields_spanning_lines_keep_the_line_numbers_right():
    text = (
        "email,note\n"
        'ann@example.com,"first line\nsecond line\nthird line"\n'
        "bad-email,x\n"
        'bob@example.com,"a\r\nb"\r\n'
        "cy@example.com,y\n"
    )

    result = parse_customers_csv(text.encode())

    assert [line for line, _ in result.rows] == [2, 6, 8]
    assert result.rows[0][1].attributes == {"note": "first line\nsecond line\nthird line"}
    assert result.errors[0][0] == 5


def test_a_file_without_an_email_or_external_id_column_is_refused():
    with pytest.raises(InvalidInput, match='needs an "email" or an "external_id" column'):
        parse_customers_csv(b"name,city\nAnn,Paris\n")


@pytest.mark.parametrize(
    ("data", "kwargs", "message"),
    [
        (b"", {}, "The file is empty"),
        (b"\n\n", {}, "The file is empty"),
        ("email\nанна@example.com\n".encode("cp1251"), {"encoding": "utf-8"}, "not valid utf-8"),
        (b"email\n", {"encoding": "no-such-codec"}, "Unknown encoding"),
        (b"email,Email\n", {}, 'repeats the column "Email"'),
        (b"PK\x03\x04\x00\x00binary", {}, "not a CSV text file"),
    ],
)
def test_a_file_that_cannot_be_read_is_refused(data: bytes, kwargs: dict, message: str):
    with pytest.raises(InvalidInput, match=message):
        parse_customers_csv(data, **kwargs)


def test_a_header_alone_gives_no_rows_and_no_errors():
    result = parse_customers_csv(b"external_id;email\n")

    assert (result.rows, result.errors) == ([], [])
