"""The SMPP 3.4 PDUs the ESME in :mod:`tidings.transports.smpp` speaks, as bytes.

A PDU is a 16-byte header (``command_length``, ``command_id``,
``command_status``, ``sequence_number``, big-endian 32-bit) and a body of
C-octet strings (NUL-terminated), integers and optional TLVs (tag, length,
value). Only what the client sends or reads is here: binds, ``submit_sm``,
``deliver_sm`` / ``data_sm`` (read), ``enquire_link``, ``unbind``,
``generic_nack`` and the responses. Decoding a malformed body raises
:class:`PduError`; it never reads past the PDU.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")
#: A PDU longer than this is refused (the standard's PDUs are far shorter).
MAX_PDU_LENGTH = 64 * 1024


class Command:
    GENERIC_NACK = 0x80000000
    BIND_RECEIVER = 0x00000001
    BIND_TRANSMITTER = 0x00000002
    SUBMIT_SM = 0x00000004
    DELIVER_SM = 0x00000005
    UNBIND = 0x00000006
    BIND_TRANSCEIVER = 0x00000009
    OUTBIND = 0x0000000B
    ENQUIRE_LINK = 0x00000015
    ALERT_NOTIFICATION = 0x00000102
    DATA_SM = 0x00000103
    RESPONSE = 0x80000000

    @staticmethod
    def response(command_id: int) -> int:
        return command_id | Command.RESPONSE


class Status:
    """``command_status`` values the client acts on (SMPP 3.4 section 5.1.3)."""

    ROK = 0x00
    RINVMSGLEN = 0x01
    RINVCMDLEN = 0x02
    RINVCMDID = 0x03
    RINVBNDSTS = 0x04
    RALYBND = 0x05
    RSYSERR = 0x08
    RINVSRCADR = 0x0A
    RINVDSTADR = 0x0B
    RBINDFAIL = 0x0D
    RINVPASWD = 0x0E
    RINVSYSID = 0x0F
    RMSGQFUL = 0x14
    RSUBMITFAIL = 0x45
    RTHROTTLED = 0x58
    RX_T_APPN = 0x64
    RX_P_APPN = 0x65
    RX_R_APPN = 0x66


STATUS_NAMES = {
    0x00: "ESME_ROK", 0x01: "ESME_RINVMSGLEN", 0x02: "ESME_RINVCMDLEN", 0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS", 0x05: "ESME_RALYBND", 0x06: "ESME_RINVPRTFLG", 0x07: "ESME_RINVREGDLVFLG",
    0x08: "ESME_RSYSERR", 0x0A: "ESME_RINVSRCADR", 0x0B: "ESME_RINVDSTADR", 0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL", 0x0E: "ESME_RINVPASWD", 0x0F: "ESME_RINVSYSID", 0x11: "ESME_RCANCELFAIL",
    0x13: "ESME_RREPLACEFAIL", 0x14: "ESME_RMSGQFUL", 0x15: "ESME_RINVSERTYP", 0x33: "ESME_RINVNUMDESTS",
    0x34: "ESME_RINVDLNAME", 0x40: "ESME_RINVDESTFLAG", 0x42: "ESME_RINVSUBREP", 0x43: "ESME_RINVESMCLASS",
    0x44: "ESME_RCNTSUBDL", 0x45: "ESME_RSUBMITFAIL", 0x48: "ESME_RINVSRCTON", 0x49: "ESME_RINVSRCNPI",
    0x50: "ESME_RINVDSTTON", 0x51: "ESME_RINVDSTNPI", 0x53: "ESME_RINVSYSTYP", 0x54: "ESME_RINVREPFLAG",
    0x55: "ESME_RINVNUMMSGS", 0x58: "ESME_RTHROTTLED", 0x61: "ESME_RINVSCHED", 0x62: "ESME_RINVEXPIRY",
    0x63: "ESME_RINVDFTMSGID", 0x64: "ESME_RX_T_APPN", 0x65: "ESME_RX_P_APPN", 0x66: "ESME_RX_R_APPN",
    0x67: "ESME_RQUERYFAIL", 0xC0: "ESME_RINVOPTPARSTREAM", 0xC1: "ESME_ROPTPARNOTALLWD",
    0xC2: "ESME_RINVPARLEN", 0xC3: "ESME_RMISSINGOPTPARAM", 0xC4: "ESME_RINVOPTPARAMVAL",
    0xFE: "ESME_RDELIVERYFAILURE", 0xFF: "ESME_RUNKNOWNERR",
}


def status_name(status: int) -> str:
    """``ESME_RTHROTTLED (0x58)``; vendor codes as ``status 0x0401``."""
    name = STATUS_NAMES.get(status)
    return f"{name} (0x{status:02X})" if name else f"status 0x{status:04X}"


class Tag:
    """TLV tags read or written."""

    SAR_MSG_REF_NUM = 0x020C
    SAR_TOTAL_SEGMENTS = 0x020E
    SAR_SEGMENT_SEQNUM = 0x020F
    MESSAGE_PAYLOAD = 0x0424
    RECEIPTED_MESSAGE_ID = 0x001E
    MESSAGE_STATE = 0x0427
    NETWORK_ERROR_CODE = 0x0423


#: esm_class bits: the UDH indicator, and the message type (bits 2-5).
ESM_UDHI = 0x40
ESM_TYPE_MASK = 0x3C
ESM_SMSC_RECEIPT = 0x04
ESM_INTERMEDIATE_NOTIFICATION = 0x20


class PduError(Exception):
    """A PDU that cannot be read: its ``status`` is the one to answer it with."""

    def __init__(self, message: str, *, status: int = Status.RINVCMDLEN) -> None:
        self.status = status
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Pdu:
    command_id: int
    status: int
    sequence: int
    body: bytes = b""

    @property
    def is_response(self) -> bool:
        return bool(self.command_id & Command.RESPONSE)

    def encode(self) -> bytes:
        return HEADER.pack(HEADER.size + len(self.body), self.command_id, self.status,
                           self.sequence) + self.body


def read_header(data: bytes) -> tuple[int, int, int, int]:
    """``(length, command_id, status, sequence)``; PduError for an impossible length."""
    length, command_id, status, sequence = HEADER.unpack(data)
    if not HEADER.size <= length <= MAX_PDU_LENGTH:
        raise PduError(f"a PDU of {length} bytes")
    return length, command_id, status, sequence


# -- body fields ------------------------------------------------------------------


def cstring(value: str | bytes, *, limit: int) -> bytes:
    """A C-octet string of at most ``limit`` octets with its NUL; ValueError if longer."""
    raw = value.encode("ascii") if isinstance(value, str) else value
    if len(raw) + 1 > limit or b"\x00" in raw:
        raise ValueError(f"{value!r} does not fit an SMPP field of {limit} octets")
    return raw + b"\x00"


def tlv(tag: int, value: bytes) -> bytes:
    return struct.pack(">HH", tag, len(value)) + value


class Reader:
    """Reads a PDU body from the front; every read is bounded by the body."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def cstring(self) -> bytes:
        end = self.body.find(b"\x00", self.at)
        if end < 0:
            raise PduError("a C-octet string without its NUL", status=Status.RINVMSGLEN)
        value, self.at = self.body[self.at:end], end + 1
        return value

    def text(self) -> str:
        return self.cstring().decode("latin-1")

    def octets(self, n: int) -> bytes:
        if self.at + n > len(self.body):
            raise PduError("a field runs past the end of the PDU", status=Status.RINVMSGLEN)
        value, self.at = self.body[self.at:self.at + n], self.at + n
        return value

    def u8(self) -> int:
        return self.octets(1)[0]

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.at < len(self.body):
            tag, length = struct.unpack(">HH", self.octets(4))
            found[tag] = self.octets(length)
        return found


# -- what the client sends -----------------------------------------------------------


def bind_body(*, system_id: str, password: str, system_type: str = "", interface_version: int = 0x34,
              addr_ton: int = 0, addr_npi: int = 0, address_range: str = "") -> bytes:
    return (cstring(system_id, limit=16) + cstring(password, limit=9) + cstring(system_type, limit=13)
            + bytes((interface_version, addr_ton, addr_npi)) + cstring(address_range, limit=41))


@dataclass(frozen=True, kw_only=True, slots=True)
class SubmitSm:
    source_addr: str
    source_addr_ton: int
    source_addr_npi: int
    destination_addr: str
    dest_addr_ton: int = 1
    dest_addr_npi: int = 1
    esm_class: int = 0
    registered_delivery: int = 1
    data_coding: int = 0
    short_message: bytes = b""
    service_type: str = ""
    tlvs: Mapping[int, bytes] = field(default_factory=dict)

    def body(self) -> bytes:
        if len(self.short_message) > 254:
            raise ValueError("short_message longer than 254 octets")
        return (cstring(self.service_type, limit=6)
                + bytes((self.source_addr_ton, self.source_addr_npi)) + cstring(self.source_addr, limit=21)
                + bytes((self.dest_addr_ton, self.dest_addr_npi)) + cstring(self.destination_addr, limit=21)
                + bytes((self.esm_class, 0, 0))  # protocol_id, priority_flag
                + b"\x00\x00"  # schedule_delivery_time, validity_period: the SMSC's defaults
                + bytes((self.registered_delivery, 0, self.data_coding, 0, len(self.short_message)))
                + self.short_message
                + b"".join(tlv(tag, value) for tag, value in self.tlvs.items()))


def message_id_of(body: bytes) -> str:
    """The ``message_id`` of a ``submit_sm_resp`` body ("" when the body is empty,
    as SMSCs send it with an error status)."""
    if not body:
        return ""
    return Reader(body).text()


# -- what the client reads -------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class ShortMessage:
    """A ``deliver_sm`` or ``data_sm`` from the SMSC (the text is in
    ``short_message`` or, for ``data_sm`` and long ``deliver_sm``, in the
    ``message_payload`` TLV: :attr:`payload` gives whichever is there)."""

    service_type: str
    source_addr_ton: int
    source_addr: str
    dest_addr_ton: int
    destination_addr: str
    esm_class: int
    data_coding: int
    short_message: bytes
    tlvs: Mapping[int, bytes]

    @property
    def payload(self) -> bytes:
        return self.short_message or self.tlvs.get(Tag.MESSAGE_PAYLOAD, b"")


def parse_deliver_sm(body: bytes) -> ShortMessage:
    r = Reader(body)
    service_type = r.text()
    source_ton, _source_npi = r.u8(), r.u8()
    source = r.text()
    dest_ton, _dest_npi = r.u8(), r.u8()
    dest = r.text()
    esm_class, _protocol_id, _priority = r.u8(), r.u8(), r.u8()
    r.cstring()  # schedule_delivery_time
    r.cstring()  # validity_period
    _registered, _replace, data_coding, _default_id, sm_length = (r.u8() for _ in range(5))
    short_message = r.octets(sm_length)
    return ShortMessage(service_type=service_type, source_addr_ton=source_ton, source_addr=source,
                        dest_addr_ton=dest_ton, destination_addr=dest, esm_class=esm_class,
                        data_coding=data_coding, short_message=short_message, tlvs=r.tlvs())


def parse_data_sm(body: bytes) -> ShortMessage:
    r = Reader(body)
    service_type = r.text()
    source_ton, _source_npi = r.u8(), r.u8()
    source = r.text()
    dest_ton, _dest_npi = r.u8(), r.u8()
    dest = r.text()
    esm_class, _registered, data_coding = r.u8(), r.u8(), r.u8()
    return ShortMessage(service_type=service_type, source_addr_ton=source_ton, source_addr=source,
                        dest_addr_ton=dest_ton, destination_addr=dest, esm_class=esm_class,
                        data_coding=data_coding, short_message=b"", tlvs=r.tlvs())


def sar_tlvs(*, reference: int, total: int, seq: int) -> dict[int, bytes]:
    return {Tag.SAR_MSG_REF_NUM: reference.to_bytes(2, "big"), Tag.SAR_TOTAL_SEGMENTS: bytes((total,)),
            Tag.SAR_SEGMENT_SEQNUM: bytes((seq,))}
