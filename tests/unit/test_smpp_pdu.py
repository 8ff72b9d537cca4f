"""SMPP 3.4 PDUs as bytes, checked against octets written out by hand from the specification."""

from __future__ import annotations

import pytest

from tidings.transports.smpp_pdu import (
    Command,
    Pdu,
    PduError,
    Status,
    SubmitSm,
    Tag,
    bind_body,
    cstring,
    message_id_of,
    parse_data_sm,
    parse_deliver_sm,
    read_header,
    sar_tlvs,
    status_name,
)


def test_a_bind_transceiver_pdu() -> None:
    body = bind_body(system_id="tidings", password="secret", system_type="")  # 16 + 8 + 7 + 1 + 3 + 1
    assert Pdu(Command.BIND_TRANSCEIVER, 0, 1, body).encode() == (
        b"\x00\x00\x00\x24" b"\x00\x00\x00\x09" b"\x00\x00\x00\x00" b"\x00\x00\x00\x01"
        b"tidings\x00" b"secret\x00" b"\x00" b"\x34\x00\x00" b"\x00")


def test_a_submit_sm_body_with_udh_and_sar() -> None:
    body = SubmitSm(source_addr="Shop", source_addr_ton=5, source_addr_npi=0, destination_addr="37120000001",
                    esm_class=0x40, data_coding=8, short_message=b"\x05\x00\x03\x2a\x02\x01\x04\x16",
                    tlvs=sar_tlvs(reference=0x2A, total=2, seq=1)).body()
    assert body == (b"\x00" b"\x05\x00Shop\x00" b"\x01\x0137120000001\x00" b"\x40\x00\x00" b"\x00\x00"
                    b"\x01\x00\x08\x00\x08" b"\x05\x00\x03\x2a\x02\x01\x04\x16"
                    b"\x02\x0c\x00\x02\x00\x2a" b"\x02\x0e\x00\x01\x02" b"\x02\x0f\x00\x01\x01")


def test_a_short_message_longer_than_254_octets_is_refused() -> None:
    with pytest.raises(ValueError, match="254"):
        SubmitSm(source_addr="S", source_addr_ton=5, source_addr_npi=0, destination_addr="1",
                 short_message=b"x" * 255).body()


def test_a_deliver_sm_is_read_with_its_tlvs() -> None:
    body = (b"\x00" b"\x01\x0137120000001\x00" b"\x05\x00Shop\x00" b"\x04\x00\x00" b"\x00\x00"
            b"\x00\x00\x00\x00\x04STOP" b"\x00\x1e\x00\x03ff\x00" b"\x04\x27\x00\x01\x02")
    message = parse_deliver_sm(body)
    assert (message.source_addr, message.source_addr_ton, message.destination_addr, message.esm_class,
            message.data_coding, message.payload) == ("37120000001", 1, "Shop", 0x04, 0, b"STOP")
    assert message.tlvs == {Tag.RECEIPTED_MESSAGE_ID: b"ff\x00", Tag.MESSAGE_STATE: b"\x02"}


def test_a_data_sm_carries_its_text_in_the_payload_tlv() -> None:
    body = b"\x00" b"\x01\x01123456789\x00" b"\x05\x00Shop\x00" b"\x00\x00\x00" b"\x04\x24\x00\x04STOP"
    message = parse_data_sm(body)
    assert (message.source_addr, message.payload) == ("123456789", b"STOP")


@pytest.mark.parametrize("body", [
    b"\x00\x01\x0137120000001",  # a string without its NUL
    b"\x00\x01\x01123\x00\x05\x00Shop\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x09STOP",  # sm_length too long
    b"\x00\x01\x01123\x00\x05\x00Shop\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x04\x24\x00\x09ab",  # TLV
])
def test_a_truncated_body_is_an_error_not_a_read_past_the_end(body: bytes) -> None:
    with pytest.raises(PduError):
        parse_deliver_sm(body)


@pytest.mark.parametrize("length", [0, 15, 64 * 1024 + 1])
def test_impossible_lengths_are_refused(length: int) -> None:
    with pytest.raises(PduError):
        read_header(length.to_bytes(4, "big") + bytes(12))


def test_fields_that_do_not_fit_are_refused() -> None:
    with pytest.raises(ValueError):
        cstring("sixteen-chars-id", limit=16)
    assert cstring("fifteen-chars-i", limit=16) == b"fifteen-chars-i\x00"


def test_submit_sm_resp_message_id_and_status_names() -> None:
    assert message_id_of(b"000000FF\x00") == "000000FF"
    assert message_id_of(b"") == ""
    assert status_name(Status.RTHROTTLED) == "ESME_RTHROTTLED (0x58)"
    assert status_name(0x0401) == "status 0x0401"
    assert Command.response(Command.SUBMIT_SM) == 0x80000004
