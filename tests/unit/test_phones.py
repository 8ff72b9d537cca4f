"""Phone numbers to E.164 with phonenumbers, and the zones of a number."""

from __future__ import annotations

import pytest

from tidings.domain.customers import parse_customers_csv, validate_customer
from tidings.domain.phones import inbound_phone, is_e164, normalize_phone, number_time_zones
from tidings.errors import InvalidInput


@pytest.mark.parametrize(("text", "region", "e164"), [
    ("+371 2000 0001", None, "+37120000001"),
    ("0044 20 7946 0958", None, "+442079460958"),
    ("+7 (916) 123-45-67", None, "+79161234567"),
    ("020 7946 0958", "GB", "+442079460958"),
    ("2000 0001", "LV", "+37120000001"),
    ("+33 6 12 34 56 78", "LV", "+33612345678"),  # international form wins over the region
    ("+44 7700 900123", None, "+447700900123"),  # Ofcom's drama range: fiction, accepted
])
def test_numbers_become_e164(text: str, region: str | None, e164: str) -> None:
    assert normalize_phone(text, region=region) == e164
    assert is_e164(e164)


@pytest.mark.parametrize(("text", "region", "says"), [
    ("020 7946 0958", None, "not in international form"),
    ("+371 0000 0000", None, "not a valid phone number"),  # no such Latvian range
    ("+1 555 010 0199", None, "not a valid phone number"),  # area code 555 does not exist
    ("+44 20 ABC", None, "not a valid phone number"),
    ("12", "LV", "or a national number of LV"),
])
def test_an_invalid_number_is_refused_saying_the_form_to_use(text: str, region: str | None,
                                                             says: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        normalize_phone(text, region=region)
    assert caught.value.field == "phone"
    assert says in caught.value.message
    assert "+44 20 7946 0958" in caught.value.message


def test_a_customer_with_an_invalid_phone_is_refused_and_a_csv_line_reported() -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_customer({"email": "a@example.com", "phone": "+371 0000 0000"})
    assert caught.value.field == "phone"
    assert validate_customer({"email": "a@example.com", "phone": "2000 0001"},
                             region="LV").phone == "+37120000001"
    result = parse_customers_csv(b"email,phone\na@example.com,2000 0001\nb@example.com,999\n",
                                 region="LV")
    assert [(line, c.phone) for line, c in result.rows] == [(2, "+37120000001")]
    assert [line for line, _ in result.errors] == [3]
    assert result.errors[0][1].startswith('"phone" \'999\' is not a valid phone number')


def test_the_shape_check_accepts_e164_only() -> None:
    assert [is_e164(v) for v in ("+37120000001", "37120000001", "+0123456789", "+12345",
                                 "+1234567890123456", None)] == [True, False, False, False, False, False]


def test_an_smsc_sender_address_becomes_e164_or_none() -> None:
    assert inbound_phone("37120000001") == "+37120000001"
    assert inbound_phone("+37120000001") == "+37120000001"
    assert inbound_phone("20000001", region="LV") == "+37120000001"
    assert inbound_phone("ShopName") is None


def test_zones_of_a_number_come_from_its_area_or_its_country() -> None:
    assert number_time_zones("+12125550123") == ("America/New_York",)
    assert number_time_zones("+447700900123") == ("Europe/Guernsey", "Europe/Isle_of_Man", "Europe/London")
