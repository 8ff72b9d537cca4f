"""Phone numbers: E.164 on the way in, and the time zones a number is in.

What it guarantees:

- :func:`normalize_phone` gives the E.164 form (``+`` and 8 to 16 characters,
  the first digit not 0) of a number that ``phonenumbers`` holds valid for
  its country's numbering plan, written in international form (``+`` or
  ``00`` first) or, when a default ``region`` (ISO 3166 code such as ``LV``)
  is given, in that country's national form. Anything else raises
  :class:`~tidings.errors.InvalidInput` naming the field and showing the
  form to use. Numbers reserved for fiction are accepted too, so demos and
  tests can use numbers that reach nobody: Ofcom's drama range
  +44 7700 900000-900999.
- :func:`is_e164` is the shape check every stored number passes (what an
  SMS gateway can be given); the numbering plan is checked on the way in only.
- :func:`number_time_zones` gives the IANA zones of a number's area (several
  for a country that spans several, none when unknown).

Pure: the standard library and ``phonenumbers`` (a pure function of its input).
"""

from __future__ import annotations

import re

import phonenumbers
from phonenumbers import timezone as number_zones

from tidings.errors import InvalidInput

#: Regions ``phonenumbers`` knows (valid values of ``TIDINGS_DEFAULT_REGION``).
REGIONS = frozenset(phonenumbers.SUPPORTED_REGIONS)
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
#: Fictional numbers accepted although no numbering plan allocates them.
_FICTIONAL = (re.compile(r"\+447700900[0-9]{3}"),)
_UNKNOWN_ZONE = "Etc/Unknown"


def is_e164(value: str | None) -> bool:
    """True for ``+`` and 7 to 15 digits, the first not 0 (the E.164 shape)."""
    return value is not None and _E164.fullmatch(value) is not None


def normalize_phone(text: str, *, region: str | None = None, field: str = "phone") -> str:
    """The E.164 form of ``text`` (see the module docstring), or InvalidInput."""
    raw = text.strip()
    international = raw.startswith(("+", "00"))
    if raw.startswith("00"):
        raw = "+" + raw[2:]
    if not international and region is None:
        raise InvalidInput(
            f'"{field}" {text!r} is not in international form: start it with + and the country '
            "code, e.g. +44 20 7946 0958 (or set TIDINGS_DEFAULT_REGION to accept national numbers).",
            field=field)
    try:
        number = phonenumbers.parse(raw, None if international else region)
    except phonenumbers.NumberParseException:
        number = None
    if number is not None:
        e164 = phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
        if phonenumbers.is_valid_number(number) or any(f.fullmatch(e164) for f in _FICTIONAL):
            return e164
    where = " or a national number of " + region if region else ""
    raise InvalidInput(
        f'"{field}" {text!r} is not a valid phone number: write it in international form{where}, '
        "e.g. +44 20 7946 0958, with every digit of the number.", field=field)


def number_time_zones(e164: str) -> tuple[str, ...]:
    """The IANA time zones of the number's area; empty when it is not known.

    A number the plan does not place (fictional, or too new for the tables)
    gets its country's zones."""
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = number_zones.time_zones_for_number(number)
    if not zones or _UNKNOWN_ZONE in zones:
        zones = number_zones.time_zones_for_geographical_number(number)
    return tuple(z for z in zones if z != _UNKNOWN_ZONE)


def inbound_phone(address: str, *, region: str | None = None) -> str | None:
    """The E.164 form of a sender address an SMSC hands us (digits with or
    without ``+``: SMPP writes international numbers without it), or None when
    it is no phone number (an alphanumeric sender, a short code)."""
    digits = address.strip()
    for candidate in ((digits if digits.startswith("+") else "+" + digits), digits):
        try:
            return normalize_phone(candidate, region=region, field="from")
        except InvalidInput:
            continue
    return None
