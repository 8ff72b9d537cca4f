"""SMS text rules of tidings.domain.sms: encodings, counts, parts, bytes, senders, receipts."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain import sms
from tidings.errors import InvalidInput

GSM_CHARS = sms.GSM_BASIC.replace("\x1b", "") + "".join(sms.GSM_EXTENSION)
#: Text mixing GSM characters, extension characters, Cyrillic, and emoji (two UTF-16 units).
mixed = st.text(alphabet=st.sampled_from(GSM_CHARS) | st.sampled_from("Жжыщ€[]{}") |
                st.sampled_from(["😀", "🎉", "👍", "🏽"]) | st.characters(codec="utf-8"), max_size=600)
gsm_only = st.text(alphabet=st.sampled_from(GSM_CHARS), max_size=600)


def units_of(part: str, encoding: sms.Encoding) -> int:
    """Counted independently: GSM septets from the encoded bytes, UCS-2 from UTF-16."""
    if encoding is sms.Encoding.GSM7:
        return len(sms.encode_gsm7(part))
    return len(part.encode("utf-16-be", "surrogatepass")) // 2


# -- properties -------------------------------------------------------------------------


@given(mixed)
def test_parts_joined_give_back_the_text(text: str) -> None:
    assert "".join(sms.split_text(text)) == text


@given(mixed)
def test_no_part_exceeds_its_limit(text: str) -> None:
    encoding = sms.choose_encoding(text)
    parts = sms.split_text(text)
    single, limit = (160, 153) if encoding is sms.Encoding.GSM7 else (70, 67)
    if len(parts) == 1:
        assert units_of(parts[0], encoding) <= single
    else:
        assert all(0 < units_of(p, encoding) <= limit for p in parts)
        # greedy: a part ends only where the next character would not fit
        assert all(units_of(p + nxt[0], encoding) > limit for p, nxt in zip(parts, parts[1:], strict=False))


@given(mixed)
def test_gsm7_is_chosen_exactly_when_every_character_is_in_the_tables(text: str) -> None:
    in_tables = all(ch in sms.GSM_BASIC.replace("\x1b", "") or ch in "\x0c^{}\\[~]|€" for ch in text)
    assert (sms.choose_encoding(text) is sms.Encoding.GSM7) is in_tables


@given(mixed)
def test_encoded_parts_decode_to_the_text(text: str) -> None:
    message = sms.prepare(text, reference=7)
    body = b""
    for part in message.parts:
        concatenation, data = sms.read_udh(part.short_message) if part.udh else (None, part.short_message)
        body += data
        if len(message.parts) > 1:
            assert concatenation == sms.Concatenation(reference=7, total=len(message.parts),
                                                      seq=message.parts.index(part) + 1)
    if message.encoding is sms.Encoding.GSM7:
        assert sms.decode_text(body, 0) == text
    else:
        assert body.decode("utf-16-be", "surrogatepass") == text


@given(gsm_only)
def test_a_gsm_part_never_ends_inside_an_escape_sequence(text: str) -> None:
    for part in sms.split_text(text):
        data = sms.encode_gsm7(part)
        # decoding the part alone gives the part: no ESC left dangling at its end
        assert sms.decode_gsm7(data) == part


# -- examples -------------------------------------------------------------------------------


def test_ten_euro_sale_is_one_gsm7_part_of_13_septets() -> None:
    # 10 characters, three of them (€ [ ]) from the extension table: 7 + 2 * 3 = 13
    summary = sms.summarize("10€ [sale]")
    assert summary.as_dict() == {"encoding": "GSM-7", "characters": 13, "parts": 1, "ucs2_because": ""}
    assert sms.encode_gsm7("10€ [sale]") == bytes(
        [0x31, 0x30, 0x1B, 0x65, 0x20, 0x1B, 0x3C, 0x73, 0x61, 0x6C, 0x65, 0x1B, 0x3E])


def test_gsm_basic_table_maps_the_characters_that_differ_from_ascii() -> None:
    assert sms.encode_gsm7("@£$¥èÉ_ΔäÖñüà§¿¡\n") == bytes(
        [0x00, 0x01, 0x02, 0x03, 0x04, 0x1F, 0x11, 0x10, 0x7B, 0x5C, 0x7D, 0x7E, 0x7F, 0x5F, 0x60, 0x40,
         0x0A])


def test_one_emoji_turns_the_text_into_ucs2_and_counts_two() -> None:
    summary = sms.summarize("Sale today 🎉")
    assert summary.as_dict() == {"encoding": "UCS-2", "characters": 13, "parts": 1, "ucs2_because": "🎉"}


def test_limits_160_and_70_in_one_part_then_153_and_67() -> None:
    assert sms.summarize("a" * 160).parts == 1
    assert [len(p) for p in sms.split_text("a" * 161)] == [153, 8]
    assert sms.summarize("ж" * 70).parts == 1
    assert [len(p) for p in sms.split_text("ж" * 71)] == [67, 4]


def test_an_escape_sequence_moves_whole_to_the_next_part() -> None:
    text = "a" * 152 + "€" + "b" * 10  # € would take septets 153 and 154
    parts = sms.split_text(text)
    assert parts == ["a" * 152, "€" + "b" * 10]
    assert sms.summarize(text).characters == 164


def test_a_surrogate_pair_moves_whole_to_the_next_part() -> None:
    text = "ж" * 66 + "😀" + "ж" * 10  # the emoji would take units 67 and 68
    parts = sms.split_text(text)
    assert parts == ["ж" * 66, "😀" + "ж" * 10]
    assert [len(p.encode("utf-16-be")) // 2 for p in parts] == [66, 12]


def test_ucs2_because_lists_each_forcing_character_once_in_order() -> None:
    assert sms.summarize("Привет, Anna! 😀 Привет").ucs2_because == "Привет😀"


def test_long_cyrillic_text_is_two_ucs2_parts_with_one_reference() -> None:
    text = "Скидка 20% на всё до воскресенья! Приходите в наш магазин на Ленина 5, ждём вас. " \
           "Ваш промокод ВЕСНА"
    assert 70 < len(text) <= 134
    message = sms.prepare(text, reference=300)
    assert message.encoding is sms.Encoding.UCS2 and message.data_coding == 8
    assert [p.short_message[:6] for p in message.parts] == [bytes([5, 0, 3, 300 % 256, 2, 1]),
                                                           bytes([5, 0, 3, 300 % 256, 2, 2])]
    assert b"".join(p.short_message[6:] for p in message.parts).decode("utf-16-be") == text


def test_sar_parts_carry_no_udh_and_a_16_bit_reference() -> None:
    message = sms.prepare("x" * 200, reference=0x1234, sar=True)
    assert [p.udh for p in message.parts] == [False, False]
    assert [p.sar for p in message.parts] == [sms.Concatenation(reference=0x1234, total=2, seq=1),
                                              sms.Concatenation(reference=0x1234, total=2, seq=2)]
    assert message.parts[0].short_message == b"x" * 153


def test_a_single_part_has_no_concatenation() -> None:
    message = sms.prepare("Hello", reference=1)
    assert message.parts == (sms.SmsPart(text="Hello", short_message=b"Hello", udh=False, sar=None),)


def test_a_text_of_more_than_255_parts_is_refused() -> None:
    with pytest.raises(InvalidInput, match="256 parts"):
        sms.prepare("a" * (153 * 255 + 1), reference=1)


def test_read_udh_understands_the_16_bit_reference_too() -> None:
    found, body = sms.read_udh(bytes([6, 0x08, 4, 0x12, 0x34, 3, 2]) + b"hi")
    assert (found, body) == (sms.Concatenation(reference=0x1234, total=3, seq=2), b"hi")


def test_decode_text_by_data_coding() -> None:
    assert sms.decode_text("Stop".encode("utf-16-be"), 8) == "Stop"
    assert sms.decode_text(b"\x1b\x65 5", 0) == "€ 5"
    assert sms.decode_text("Grüße".encode("latin-1"), 3) == "Grüße"


# -- senders and numbers ------------------------------------------------------------------------


@pytest.mark.parametrize(("sender", "expected"), [
    ("Shop", sms.Address(value="Shop", ton=5, npi=0)),
    ("Shop 24-7", sms.Address(value="Shop 24-7", ton=5, npi=0)),
    ("ABCDEFGHIJK", sms.Address(value="ABCDEFGHIJK", ton=5, npi=0)),
    ("+4915112345678", sms.Address(value="4915112345678", ton=1, npi=1)),
    ("+371 2000 0001", sms.Address(value="37120000001", ton=1, npi=1)),
])
def test_valid_senders(sender: str, expected: sms.Address) -> None:
    assert sms.validate_sender(sender) == expected


@pytest.mark.parametrize(("sender", "says"), [
    ("", "empty"),
    ("ABCDEFGHIJKL", "at most 11"),
    ("Магазин", "Latin letters"),
    ("Shop!", "Latin letters"),
    ("12345", "neither a name"),
    ("0049151123456", "neither a name"),
])
def test_invalid_senders_say_what_is_allowed(sender: str, says: str) -> None:
    with pytest.raises(InvalidInput, match=says) as raised:
        sms.validate_sender(sender)
    assert raised.value.field == "source"


def test_a_destination_must_be_international() -> None:
    assert sms.international_number("+37120000001") == sms.Address(value="37120000001", ton=1, npi=1)
    with pytest.raises(InvalidInput, match="international form"):
        sms.international_number("020000001")


# -- receipts and ids ------------------------------------------------------------------------


def test_a_standard_receipt_text_is_read() -> None:
    receipt = sms.receipt_from_text("id:0A1B sub:001 dlvrd:000 submit date:2611291229 "
                                    "done date:2611291231 stat:UNDELIV err:034 text:Hello there")
    assert receipt == sms.DeliveryReceipt(remote_id="0A1B", state=sms.ReceiptState.UNDELIVERABLE,
                                          error="034", done_at=datetime(2026, 11, 29, 12, 31, tzinfo=UTC))


def test_receipt_fields_in_other_order_and_case() -> None:
    receipt = sms.receipt_from_text("Stat:DELIVRD ID:77 err:000 Done Date:261129123105")
    assert receipt == sms.DeliveryReceipt(remote_id="77", state=sms.ReceiptState.DELIVERED, error=None,
                                          done_at=datetime(2026, 11, 29, 12, 31, 5, tzinfo=UTC))


def test_text_without_id_and_stat_is_no_receipt() -> None:
    assert sms.receipt_from_text("STOP") is None
    assert sms.receipt_from_text("id:5 nothing else") is None


@pytest.mark.parametrize(("receipt_id", "submit_id"), [
    ("ff", "ff"), ("000000FF", "ff"), ("255", "ff"), ("FF", "255"), ("0000000255", "255"),
    ("00ff", "0xff".removeprefix("0x")), ("abc-123", "abc-123"),
])
def test_receipt_ids_match_whatever_their_form(receipt_id: str, submit_id: str) -> None:
    assert sms.message_ids_match(receipt_id, submit_id)


@pytest.mark.parametrize(("receipt_id", "submit_id"), [("fe", "ff"), ("256", "ff"), ("ABC-123", "abc-123")])
def test_different_ids_do_not_match(receipt_id: str, submit_id: str) -> None:
    assert not sms.message_ids_match(receipt_id, submit_id)


def test_an_exact_match_comes_before_a_conversion() -> None:
    # "12" is both decimal 12 (hex "c") and hex 0x12: the id itself is tried first
    assert sms.message_id_candidates("12") == ("12", "c", "18")
    assert sms.message_id_candidates("000000FF") == ("ff", "255")
    assert sms.canonical_message_id(" 000 ") == "0"
