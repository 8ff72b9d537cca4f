"""SMS text as operators count it: GSM 03.38 or UCS-2, parts, senders, receipts.

Pure: standard library only. What it guarantees:

- **Encoding**: GSM-7 (SMPP ``data_coding`` 0) exactly when every character
  is in the GSM 03.38 basic table or its extension table; the extension
  characters ``^ { } [ ] ~ \\ | €`` and form feed travel as ESC + character
  and count as two. Anything else makes the whole text UCS-2 (``data_coding``
  8, UTF-16-BE), counted in UTF-16 code units: an emoji outside the Basic
  Multilingual Plane counts as two.
- **Parts**: one part holds 160 GSM-7 septets or 70 UCS-2 units; a longer
  text goes in concatenated parts of at most 153 septets or 67 units (the
  6-byte concatenation header takes the rest). A part never ends inside an
  escape sequence or a surrogate pair, so a part may hold one unit less.
  Joining the parts gives back the text, always.
- **Characters** in :class:`SmsSummary` are those units (septets or UTF-16
  units), the figure the limits apply to; ``ucs2_because`` lists the
  characters that forced UCS-2, each once, in order of appearance.
- **Senders**: an alphanumeric sender (1-11 letters, digits, spaces and
  ``. - _ & +``, at least one letter) is TON 5 / NPI 0; a number is an
  international one (E.164, 7-15 digits, ``+`` optional) with TON 1 / NPI 1.
- **Message ids** of the SMSC are compared by :func:`message_id_candidates`:
  see there for the rule that matches receipts whatever the id's form;
  :func:`receipt_id_forms` is the same rule seen from the submitted id.
- **Delivery** of a message (:func:`roll_up`): delivered when every part's
  receipt says so; undelivered, expired or rejected as soon as one part's
  final receipt says that (the text cannot arrive whole any more).
- **Warnings** (:func:`ucs2_warning`): a text made UCS-2 only by characters
  that are no letters (an emoji, typographic quotes) is worth a warning.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from tidings.errors import InvalidInput

#: GSM 03.38 basic character set, by septet value (0x1B is the escape, not a character).
GSM_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞ\x1bÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
ESC = 0x1B
#: GSM 03.38 extension table: character -> septet that follows ESC.
GSM_EXTENSION = {"\x0c": 0x0A, "^": 0x14, "{": 0x28, "}": 0x29, "\\": 0x2F, "[": 0x3C, "~": 0x3D,
                 "]": 0x3E, "|": 0x40, "€": 0x65}

_BASIC_SEPTET = {ch: i for i, ch in enumerate(GSM_BASIC) if i != ESC}
_BASIC_CHAR = {i: ch for ch, i in _BASIC_SEPTET.items()}
_EXTENSION_CHAR = {septet: ch for ch, septet in GSM_EXTENSION.items()}
_GSM_CHARS = frozenset(_BASIC_SEPTET) | frozenset(GSM_EXTENSION)
#: str.translate table from text to septets as code points 0-127 (then encoded as Latin-1).
_TO_SEPTETS = {ord(ch): chr(i) for ch, i in _BASIC_SEPTET.items()} | {
    ord(ch): chr(ESC) + chr(septet) for ch, septet in GSM_EXTENSION.items()}

#: Units (septets or UTF-16 code units) in one single part / in each concatenated part.
GSM7_SINGLE, GSM7_PART = 160, 153
UCS2_SINGLE, UCS2_PART = 70, 67
#: SMPP data_coding values.
DATA_CODING_GSM7 = 0
DATA_CODING_LATIN1 = 3
DATA_CODING_UCS2 = 8
#: At most this many parts (the UDH counts them in one octet).
MAX_PARTS = 255


class Encoding(enum.StrEnum):
    GSM7 = "GSM-7"
    UCS2 = "UCS-2"

    @property
    def data_coding(self) -> int:
        return DATA_CODING_GSM7 if self is Encoding.GSM7 else DATA_CODING_UCS2


def char_units(ch: str, encoding: Encoding) -> int:
    """What one character costs: 1 or 2 septets, 1 or 2 UTF-16 code units."""
    if encoding is Encoding.GSM7:
        return 2 if ch in GSM_EXTENSION else 1
    return 2 if ord(ch) > 0xFFFF else 1


def is_gsm7(ch: str) -> bool:
    """True when ``ch`` is in the GSM 03.38 basic or extension table."""
    return ch in _GSM_CHARS


def choose_encoding(text: str) -> Encoding:
    """GSM-7 when every character is in the GSM 03.38 tables, else UCS-2."""
    return Encoding.GSM7 if _GSM_CHARS.issuperset(text) else Encoding.UCS2


def count_units(text: str, encoding: Encoding | None = None) -> int:
    """Septets (GSM-7) or UTF-16 code units (UCS-2) of ``text``."""
    encoding = encoding or choose_encoding(text)
    if encoding is Encoding.GSM7:
        return len(text.translate(_TO_SEPTETS))
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def split_text(text: str, encoding: Encoding | None = None) -> list[str]:
    """The text of each part, in order; ``"".join`` of them is ``text``.

    One part when the text fits a single message (empty text too); otherwise
    greedy parts of up to 153 septets / 67 units that never split a character,
    so never an escape sequence or a surrogate pair.
    """
    encoding = encoding or choose_encoding(text)
    single, limit = (GSM7_SINGLE, GSM7_PART) if encoding is Encoding.GSM7 else (UCS2_SINGLE, UCS2_PART)
    if count_units(text, encoding) <= single:
        return [text]
    parts: list[str] = []
    start = used = 0
    for i, ch in enumerate(text):
        cost = char_units(ch, encoding)
        if used + cost > limit:
            parts.append(text[start:i])
            start, used = i, 0
        used += cost
    parts.append(text[start:])
    return parts


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsSummary:
    """What a preview shows of one text: see :meth:`as_dict`."""

    encoding: Encoding
    characters: int
    parts: int
    ucs2_because: str

    def as_dict(self) -> dict[str, str | int]:
        """``{"encoding": "GSM-7"|"UCS-2", "characters", "parts", "ucs2_because"}``."""
        return {"encoding": self.encoding.value, "characters": self.characters, "parts": self.parts,
                "ucs2_because": self.ucs2_because}


def summarize(text: str) -> SmsSummary:
    """Encoding, units counted against the limits, parts, and the characters that
    forced UCS-2 (each once, in order; empty for GSM-7)."""
    encoding = choose_encoding(text)
    because = "".join(dict.fromkeys(ch for ch in text if not is_gsm7(ch)))
    return SmsSummary(encoding=encoding, characters=count_units(text, encoding),
                      parts=len(split_text(text, encoding)), ucs2_because=because)


def ucs2_warning(text: str) -> str | None:
    """A warning when the text is UCS-2 only because of characters that are no
    letters or digits (an emoji, typographic quotes or dashes): what they cost
    in parts and what the text would take without them. None otherwise (GSM-7,
    or a text in a script GSM-7 cannot write, such as Cyrillic)."""
    summary = summarize(text)
    forcing = summary.ucs2_because
    if summary.encoding is Encoding.GSM7 or any(unicodedata.category(ch)[0] in "LN" for ch in forcing):
        return None
    without = summarize("".join(ch for ch in text if ch not in forcing))
    shown = ", ".join(forcing)
    subject = f"The character {shown} makes" if len(forcing) == 1 else f"The characters {shown} make"
    cost = (f"it needs {summary.parts} parts instead of {without.parts}" if summary.parts != without.parts
            else f"it still fits in {summary.parts} {'part' if summary.parts == 1 else 'parts'}")
    them = "it" if len(forcing) == 1 else "them"
    return (f"{subject} this text UCS-2, where a part holds 70 characters instead of 160: {cost}. "
            f"Remove {them} to send GSM-7.")


# -- bytes ----------------------------------------------------------------------


def encode_gsm7(text: str) -> bytes:
    """GSM 03.38 septets, one per octet (unpacked, as SMPP ``data_coding`` 0 carries
    them); extension characters as ESC + septet. ValueError for any other character."""
    if not _GSM_CHARS.issuperset(text):
        bad = next(ch for ch in text if ch not in _GSM_CHARS)
        raise ValueError(f"{bad!r} is not a GSM 03.38 character")
    return text.translate(_TO_SEPTETS).encode("latin-1")


def decode_gsm7(data: bytes) -> str:
    """Unpacked GSM 03.38 septets to text; an unknown escape reads as a space
    (the standard's fallback), a stray high bit is ignored."""
    out: list[str] = []
    escaped = False
    for octet in data:
        septet = octet & 0x7F
        if escaped:
            out.append(_EXTENSION_CHAR.get(septet, " "))
            escaped = False
        elif septet == ESC:
            escaped = True
        else:
            out.append(_BASIC_CHAR[septet])
    return "".join(out)


def encode_text(text: str, encoding: Encoding) -> bytes:
    """GSM-7 septets or UTF-16-BE (a lone surrogate passes through unchanged)."""
    if encoding is Encoding.GSM7:
        return encode_gsm7(text)
    return text.encode("utf-16-be", "surrogatepass")


def decode_text(data: bytes, data_coding: int) -> str:
    """A received short message to text by its SMPP ``data_coding``: 0 and 1 GSM
    03.38 (1 is IA5/ASCII, read the same way for printable text), 3 Latin-1,
    8 UCS-2/UTF-16-BE; other codings are read as Latin-1 (nothing is lost)."""
    if data_coding in (0, 1):
        return decode_gsm7(data)
    if data_coding == DATA_CODING_UCS2:
        return data[: len(data) - len(data) % 2].decode("utf-16-be", "replace")
    return data.decode("latin-1")


# -- concatenation ------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True, slots=True)
class Concatenation:
    """Where a part belongs: message ``reference``, part ``seq`` (1-based) of ``total``."""

    reference: int
    total: int
    seq: int


def concatenation_udh(*, reference: int, total: int, seq: int) -> bytes:
    """The 6-byte user data header of a concatenated part: UDHL 5, IEI 0x00
    (8-bit reference), IEDL 3, reference, total parts, this part's number."""
    if not (0 <= reference <= 0xFF and 1 <= seq <= total <= MAX_PARTS):
        raise ValueError(f"bad concatenation: reference {reference}, part {seq} of {total}")
    return bytes((5, 0x00, 3, reference, total, seq))


def read_udh(short_message: bytes) -> tuple[Concatenation | None, bytes]:
    """Split a short message sent with the UDHI flag into its concatenation
    (IEI 0x00 with an 8-bit or 0x08 with a 16-bit reference; None if it has
    neither) and the text bytes after the header."""
    if not short_message:
        return None, short_message
    udhl = short_message[0]
    header, body = short_message[1: 1 + udhl], short_message[1 + udhl:]
    found: Concatenation | None = None
    i = 0
    while i + 2 <= len(header):
        iei, length = header[i], header[i + 1]
        value = header[i + 2: i + 2 + length]
        if iei == 0x00 and len(value) == 3 and value[1]:
            found = Concatenation(reference=value[0], total=value[1], seq=value[2])
        elif iei == 0x08 and len(value) == 4 and value[2]:
            found = Concatenation(reference=int.from_bytes(value[:2], "big"), total=value[2], seq=value[3])
        i += 2 + length
    return found, body


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsPart:
    """One part as it goes into a ``submit_sm``: ``short_message`` (with the UDH
    in front when ``udh``), and the SAR values when concatenated by TLVs."""

    text: str
    short_message: bytes
    udh: bool
    sar: Concatenation | None


@dataclass(frozen=True, kw_only=True, slots=True)
class SmsMessage:
    """A text ready to submit: its encoding and parts in order."""

    text: str
    encoding: Encoding
    parts: tuple[SmsPart, ...]

    @property
    def data_coding(self) -> int:
        return self.encoding.data_coding


def prepare(text: str, *, reference: int, sar: bool = False) -> SmsMessage:
    """Split and encode ``text``. A long text carries concatenation data: a UDH
    (8-bit ``reference``, taken modulo 256) or, with ``sar``, SAR values
    (16-bit ``reference``, modulo 65536) and no UDH. InvalidInput when the text
    needs more than 255 parts."""
    encoding = choose_encoding(text)
    texts = split_text(text, encoding)
    total = len(texts)
    if total > MAX_PARTS:
        raise InvalidInput(f"The text is too long for one SMS: it needs {total} parts, at most "
                           f"{MAX_PARTS} can be joined.", field="text")
    parts: list[SmsPart] = []
    for seq, part in enumerate(texts, start=1):
        body = encode_text(part, encoding)
        if total == 1:
            parts.append(SmsPart(text=part, short_message=body, udh=False, sar=None))
        elif sar:
            parts.append(SmsPart(text=part, short_message=body, udh=False,
                                 sar=Concatenation(reference=reference % 0x10000, total=total, seq=seq)))
        else:
            header = concatenation_udh(reference=reference % 0x100, total=total, seq=seq)
            parts.append(SmsPart(text=part, short_message=header + body, udh=True, sar=None))
    return SmsMessage(text=text, encoding=encoding, parts=tuple(parts))


# -- addresses ------------------------------------------------------------------------

TON_INTERNATIONAL, TON_ALPHANUMERIC = 1, 5
NPI_UNKNOWN, NPI_E164 = 0, 1

_ALPHANUMERIC = re.compile(r"[A-Za-z0-9 .\-_&+]{1,11}")
_NUMBER_SEPARATORS = re.compile(r"[\s\-().]")


@dataclass(frozen=True, kw_only=True, slots=True)
class Address:
    """An SMPP address: ``value`` as it goes on the wire, its TON and NPI."""

    value: str
    ton: int
    npi: int


def international_number(phone: str, *, field: str = "phone") -> Address:
    """An international number (``+`` optional, spaces, dashes, dots and brackets
    ignored; 7-15 digits, the first not 0) as TON 1 / NPI 1 digits."""
    digits = _NUMBER_SEPARATORS.sub("", phone.strip())
    digits = digits.removeprefix("+")
    if not digits.isascii() or not digits.isdigit() or not 7 <= len(digits) <= 15 or digits[0] == "0":
        raise InvalidInput(
            f"{phone!r} is not a phone number in international form: write the country code "
            "and the number, 7 to 15 digits, for example +4915112345678.", field=field)
    return Address(value=digits, ton=TON_INTERNATIONAL, npi=NPI_E164)


def validate_sender(sender: str, *, field: str = "source") -> Address:
    """The SMS sender: alphanumeric (TON 5, NPI 0) when it has a letter, else an
    international number (TON 1, NPI 1). InvalidInput saying what is allowed."""
    value = sender.strip()
    if not value:
        raise InvalidInput("The SMS sender is empty: give a name of up to 11 letters and digits "
                           "(for example ShopName) or an international phone number.", field=field)
    if any(ch.isalpha() for ch in value):
        if len(value) > 11:
            raise InvalidInput(f"The SMS sender {value!r} is {len(value)} characters long: a sender "
                               "name may have at most 11.", field=field)
        if not _ALPHANUMERIC.fullmatch(value) or not any(ch.isascii() and ch.isalpha() for ch in value):
            raise InvalidInput(f"The SMS sender {value!r} may only have Latin letters A-Z, digits, "
                               "spaces and . - _ & +, with at least one letter.", field=field)
        return Address(value=value, ton=TON_ALPHANUMERIC, npi=NPI_UNKNOWN)
    try:
        return international_number(value, field=field)
    except InvalidInput:
        raise InvalidInput(f"The SMS sender {value!r} is neither a name (up to 11 characters with "
                           "a letter) nor an international phone number (7 to 15 digits with the "
                           "country code).", field=field) from None


# -- receipts and replies ---------------------------------------------------------------


class ReceiptState(enum.StrEnum):
    """What a delivery receipt says about a part (SMPP 3.4 message states)."""

    ENROUTE = "enroute"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    DELETED = "deleted"
    UNDELIVERABLE = "undeliverable"
    ACCEPTED = "accepted"
    UNKNOWN = "unknown"
    REJECTED = "rejected"

    @property
    def final(self) -> bool:
        """True for a state that will not change any more."""
        return self not in (ReceiptState.ENROUTE, ReceiptState.ACCEPTED, ReceiptState.UNKNOWN)


#: The ``stat:`` words of the receipt text (SMPP 3.4 Appendix B), some SMSCs' variants too.
RECEIPT_STAT = {
    "DELIVRD": ReceiptState.DELIVERED, "DELIVERED": ReceiptState.DELIVERED,
    "EXPIRED": ReceiptState.EXPIRED, "DELETED": ReceiptState.DELETED,
    "UNDELIV": ReceiptState.UNDELIVERABLE, "UNDELIVERABLE": ReceiptState.UNDELIVERABLE,
    "ACCEPTD": ReceiptState.ACCEPTED, "ACCEPTED": ReceiptState.ACCEPTED,
    "UNKNOWN": ReceiptState.UNKNOWN, "REJECTD": ReceiptState.REJECTED,
    "REJECTED": ReceiptState.REJECTED, "ENROUTE": ReceiptState.ENROUTE,
}
#: The ``message_state`` TLV's values.
MESSAGE_STATE = {1: ReceiptState.ENROUTE, 2: ReceiptState.DELIVERED, 3: ReceiptState.EXPIRED,
                 4: ReceiptState.DELETED, 5: ReceiptState.UNDELIVERABLE, 6: ReceiptState.ACCEPTED,
                 7: ReceiptState.UNKNOWN, 8: ReceiptState.REJECTED}


@dataclass(frozen=True, kw_only=True, slots=True)
class DeliveryReceipt:
    """The SMSC's word on one submitted part: ``remote_id`` as the SMSC wrote it
    (match it with :func:`message_id_candidates`), its state, the error code if
    any, and when it was done (None when the receipt does not say)."""

    remote_id: str
    state: ReceiptState
    error: str | None = None
    done_at: datetime | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class InboundMessage:
    """A message a phone sent to us (a reply such as STOP), concatenated parts joined."""

    source: str
    destination: str
    text: str


_RECEIPT_FIELD = re.compile(
    r"(?i)\b(id|sub|dlvrd|submit date|done date|stat|err|text)\s*:\s*(.*?)"
    r"(?=\s+(?:id|sub|dlvrd|submit date|done date|stat|err|text)\s*:|$)", re.S)


def parse_receipt_text(text: str) -> dict[str, str] | None:
    """The fields of a receipt's ``short_message`` (``id:... sub:... dlvrd:...
    submit date:... done date:... stat:... err:... text:...``, any order and
    case) by lower-case name; None when it has no ``id`` and ``stat``."""
    fields = {m.group(1).lower(): m.group(2).strip() for m in _RECEIPT_FIELD.finditer(text)}
    if "id" not in fields or "stat" not in fields:
        return None
    return fields


def parse_receipt_date(value: str | None) -> datetime | None:
    """``YYMMDDhhmm`` or ``YYMMDDhhmmss`` (as the SMSC writes it, read as UTC) to a
    timezone-aware datetime; None if absent or malformed."""
    if not value or not value.isdigit() or len(value) not in (10, 12):
        return None
    try:
        return datetime.strptime(value, "%y%m%d%H%M%S" if len(value) == 12 else "%y%m%d%H%M").replace(
            tzinfo=UTC)
    except ValueError:
        return None


def receipt_from_text(text: str) -> DeliveryReceipt | None:
    """A :class:`DeliveryReceipt` from the standard receipt text, or None."""
    fields = parse_receipt_text(text)
    if fields is None:
        return None
    state = RECEIPT_STAT.get(fields["stat"].upper(), ReceiptState.UNKNOWN)
    err = fields.get("err")
    return DeliveryReceipt(remote_id=fields["id"], state=state,
                           error=err if err and err.strip("0") else None,
                           done_at=parse_receipt_date(fields.get("done date")))


_HEX = re.compile(r"[0-9a-fA-F]+")


def canonical_message_id(remote_id: str) -> str:
    """The form to store an SMSC message id in: trimmed; a hexadecimal (or
    decimal) id in lower case without leading zeros ("0" for zero); any other
    id (with letters beyond f, dashes...) exactly as given."""
    value = remote_id.strip()
    if _HEX.fullmatch(value):
        return value.lower().lstrip("0") or "0"
    return value


def message_id_candidates(remote_id: str) -> tuple[str, ...]:
    """The canonical ids a receipt's id may stand for, best first.

    SMSCs do not agree on the form of their own ids: some answer ``submit_sm``
    with hex ("ff") and write receipts in decimal ("255"), others pad with zeros
    ("000000FF"). The rule: first the id's own canonical form; then, when it is
    all decimal digits, the hex of that number; then, when it is all hex digits,
    the decimal of that number read as hex. Look the stored (canonical) submit
    ids up in this order and take the first that exists, so an exact match
    always wins over a conversion.
    """
    own = canonical_message_id(remote_id)
    found = [own]
    if own.isdigit():
        found.append(format(int(own), "x"))
    if _HEX.fullmatch(own):
        found.append(str(int(own, 16)))
    return tuple(dict.fromkeys(found))


def message_ids_match(receipt_id: str, submit_id: str) -> bool:
    """True when a receipt's id names the part the SMSC accepted as ``submit_id``
    (under the rule of :func:`message_id_candidates`)."""
    return canonical_message_id(submit_id) in message_id_candidates(receipt_id)


def receipt_id_forms(submit_id: str) -> tuple[str, ...]:
    """The canonical receipt ids that name the part accepted as ``submit_id``
    under :func:`message_id_candidates` (its own form, the decimal of it read as
    hex, the hex of it read as decimal): how a receipt that came before its part
    was recorded is found again."""
    own = canonical_message_id(submit_id)
    found = [own]
    if _HEX.fullmatch(own):
        found.append(str(int(own, 16)))
    if own.isdigit():
        found.append(format(int(own), "x"))
    return tuple(dict.fromkeys(found))


class Delivery(enum.StrEnum):
    """What receipts say about a whole message (or a part): see :func:`roll_up`."""

    DELIVERED = "delivered"
    UNDELIVERED = "undelivered"
    EXPIRED = "expired"
    REJECTED = "rejected"


#: Final receipt states and what they mean for delivery (deleted: never delivered).
DELIVERY_OF = {ReceiptState.DELIVERED: Delivery.DELIVERED, ReceiptState.UNDELIVERABLE: Delivery.UNDELIVERED,
               ReceiptState.DELETED: Delivery.UNDELIVERED, ReceiptState.EXPIRED: Delivery.EXPIRED,
               ReceiptState.REJECTED: Delivery.REJECTED}


def roll_up(parts: Sequence[Delivery | None]) -> Delivery | None:
    """A message's delivery from its parts' (None: no final receipt yet):
    delivered when every part is; the first part that failed decides as soon
    as one did; else None (still waiting)."""
    failed = next((p for p in parts if p is not None and p is not Delivery.DELIVERED), None)
    if failed is not None:
        return failed
    if parts and all(p is Delivery.DELIVERED for p in parts):
        return Delivery.DELIVERED
    return None
