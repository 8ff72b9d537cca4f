"""The SMS rules added for mailings: receipts found from the submitted id, the
roll-up per message, the UCS-2 warning, reply keywords, short link tokens,
statistics of an SMS mailing, quiet hours settings."""

from __future__ import annotations

from dataclasses import replace
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.config import Settings
from tidings.domain import sms
from tidings.domain.engagement import ZERO, statistics
from tidings.domain.quiet_hours import normalize_quiet_hours
from tidings.domain.sms import Delivery, roll_up
from tidings.domain.sms_replies import Keyword, keyword, with_opt_out
from tidings.domain.tracking import sign_short, verify_short
from tidings.errors import InvalidInput

D, U, E, R = Delivery.DELIVERED, Delivery.UNDELIVERED, Delivery.EXPIRED, Delivery.REJECTED
ids = st.one_of(st.integers(0, 2**40).map(lambda n: format(n, "x")),
                st.integers(0, 2**40).map(str),
                st.integers(0, 2**40).map(lambda n: f"{n:010X}"))


@given(ids, ids)
def test_the_forms_of_a_submitted_id_are_exactly_the_receipt_ids_that_name_it(submit: str,
                                                                             receipt: str) -> None:
    forms = sms.receipt_id_forms(submit)
    assert all(sms.message_ids_match(form, submit) for form in forms)
    assert (sms.canonical_message_id(receipt) in forms) == sms.message_ids_match(receipt, submit)


def test_a_message_is_delivered_when_every_part_is_and_failed_as_soon_as_one_part_failed() -> None:
    assert roll_up([D, D]) is D
    assert roll_up([D, None]) is None
    assert roll_up([None, E]) is E
    assert roll_up([D, R, U]) is R
    assert roll_up([]) is None
    assert sms.DELIVERY_OF[sms.ReceiptState.DELETED] is U
    assert sms.ReceiptState.ENROUTE not in sms.DELIVERY_OF


def test_one_emoji_in_a_latin_text_is_warned_about_with_its_cost() -> None:
    text = "Spring sale: 20% off everything in the shop until Sunday, come and see us soon 🌷"
    assert sms.ucs2_warning(text) == (
        "The character 🌷 makes this text UCS-2, where a part holds 70 characters instead of 160: "
        "it needs 2 parts instead of 1. Remove it to send GSM-7.")
    assert sms.ucs2_warning("Hi “Ann” 👋") == (
        "The characters “, ”, 👋 make this text UCS-2, where a part holds 70 characters instead "
        "of 160: it still fits in 1 part. Remove them to send GSM-7.")


def test_a_text_in_a_script_gsm7_cannot_write_or_in_gsm7_is_not_warned_about() -> None:
    assert sms.ucs2_warning("Скидка 20% до воскресенья 🌷") is None
    assert sms.ucs2_warning("10€ [sale]") is None


@pytest.mark.parametrize(("text", "expected"), [
    ("STOP", Keyword.STOP), (" stop ", Keyword.STOP), ("StopAll", Keyword.STOP),
    ("unsubscribe", Keyword.STOP), ("Cancel", Keyword.STOP), ("end", Keyword.STOP), ("QUIT\n", Keyword.STOP),
    ("start", Keyword.START), ("Unstop", Keyword.START), ("yes", Keyword.START),
    ("help", Keyword.HELP), ("please stop", None), ("stop!", None), ("", None), ("STOPP", None),
])
def test_a_reply_is_a_keyword_only_when_it_is_the_whole_message(text: str, expected: Keyword | None) -> None:
    assert keyword(text) is expected


def test_local_stop_words_are_added_in_any_case() -> None:
    assert keyword("stopp", stop_words=("STOPP", "СТОП")) is Keyword.STOP
    assert keyword("стоп", stop_words=("STOPP", "СТОП")) is Keyword.STOP


def test_the_opt_out_line_is_added_once() -> None:
    assert with_opt_out("Sale!", "https://s.example/s/x") == "Sale!\nSTOP: https://s.example/s/x"
    assert with_opt_out("Sale! Stop: https://s.example/s/x", "https://s.example/s/x") == (
        "Sale! Stop: https://s.example/s/x")


@given(st.integers(0, 2**63 - 1), st.integers(0, 2**32 - 1))  # ids are signed 64-bit
def test_a_short_token_gives_back_its_message_and_link(message_id: int, link: int) -> None:
    token = sign_short(b"k", message_id, link)
    assert verify_short(b"k", token) == (message_id, link)
    assert len(token) <= 30


@given(st.integers(0, 2**35 - 1), st.integers(0, 127))
def test_a_short_token_of_a_real_mailing_takes_at_most_20_characters(message_id: int, link: int) -> None:
    assert 14 <= len(sign_short(b"k", message_id, link)) <= 20


def test_a_short_token_altered_or_of_another_secret_is_refused() -> None:
    token = sign_short(b"k", 1_000_000, 3)
    assert len(token) == 16
    for bad in (token[:-1] + ("A" if token[-1] != "A" else "B"), token[1:], token + "A", "é" + token):
        with pytest.raises(InvalidInput) as caught:
            verify_short(b"k", bad)
        assert caught.value.code == "bad_token"
    with pytest.raises(InvalidInput):
        verify_short(b"other", token)


def test_sms_statistics_count_delivered_by_receipts_and_undelivered_apart() -> None:
    counts = replace(ZERO, audience=10, sent=8, failed=1, skipped=1, confirmed_delivered=5, undelivered=1,
                     expired=1, rejected=0, converted=1, orders=1, revenue=Decimal("10"))
    shown = statistics(counts, sms=True)
    assert (shown["delivered"], shown["undelivered"], shown["conversion_rate"]) == (5, 2, 0.2)
    assert shown["receipts"] == {"delivered": 5, "undelivered": 1, "expired": 1, "rejected": 0, "none": 1}
    assert statistics(counts)["delivered"] == 8  # email: sent less bounced


def test_quiet_hours_are_on_by_default_for_sms_and_refused_for_email() -> None:
    assert normalize_quiet_hours(None, channel="sms", default_window="22:00-08:00") == {
        "enabled": True, "window": "22:00-08:00"}
    assert normalize_quiet_hours({"window": "20:30-9:15"}, channel="sms", default_window="x") == {
        "enabled": True, "window": "20:30-09:15"}
    assert normalize_quiet_hours(None, channel="email", default_window="21:00-09:00") is None
    with pytest.raises(InvalidInput) as caught:
        normalize_quiet_hours({"enabled": True}, channel="email", default_window="21:00-09:00")
    assert caught.value.field == "quiet_hours"
    with pytest.raises(InvalidInput) as caught:
        normalize_quiet_hours({"window": "late"}, channel="sms", default_window="21:00-09:00")
    assert caught.value.field == "quiet_hours.window"


def test_the_sms_settings_are_checked_in_the_managers_words() -> None:
    with pytest.raises(ValueError, match="a sender name may have at most 11"):
        Settings(_env_file=None, sms_url="smpp://u:p@h:1?source=AVeryLongShopName")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="two-letter country code"):
        Settings(_env_file=None, default_region="Latvia")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="not a time zone"):
        Settings(_env_file=None, timezone="Riga")  # type: ignore[call-arg]
    with pytest.raises(ValueError, match="Quiet hours are two times of day"):
        Settings(_env_file=None, sms_quiet_hours="9pm-9am")  # type: ignore[call-arg]
    named = Settings(_env_file=None, sms_url="smpp://u:p@h:1?source=Shop")  # type: ignore[call-arg]
    number = Settings(_env_file=None, sms_url="smpp://u:p@h:1?source=%2B37120009999")  # type: ignore[call-arg]
    assert (named.sms_opt_out_link, number.sms_opt_out_link) == (True, False)
    assert Settings(_env_file=None, sms_url="https://gw.example/sms").sms_opt_out_link is False  # type: ignore[call-arg]
    assert Settings(_env_file=None, default_region="lv").default_region == "LV"  # type: ignore[call-arg]
