"""Customers as they come in: validation of one customer and parsing of a CSV file.

:func:`validate_customer` turns one JSON object into a :class:`CustomerInput`
or raises :class:`~tidings.errors.InvalidInput` whose ``field`` names the bad
field and whose message says what is wrong. :func:`customer_lines` reads a
CSV file line by line, giving each good line's customer and each bad line's
message (:func:`parse_customers_csv` collects them all).

Normal forms (what the store can rely on):

- ``email`` is valid and lowercased; ``phone`` is E.164 (``+`` and digits), a
  number valid in its country's numbering plan (:mod:`tidings.domain.phones`),
  given in international form or, with a default ``region``, in national form;
- strings are stripped, and an empty string means "not given" (``None``);
- at least one of ``email`` and ``external_id`` (the upsert key) is present;
- ``attributes`` maps string keys to JSON scalars or lists of scalars; a CSV
  cell becomes one by :func:`tidings.domain.attributes.cell_value` (``true``
  and ``false`` are booleans, all else is text as written);
- a status of ``None`` means "leave as it is" (``subscribed`` for a new customer).

Besides the standard library this module uses only ``email_validator``,
``charset_normalizer`` and ``phonenumbers``, pure functions of their input.
"""

from __future__ import annotations

import enum
import functools
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from email_validator import EmailNotValidError, validate_email

from tidings.domain import columns
from tidings.domain.attributes import cell_value
from tidings.domain.csvfiles import CsvText, read_csv
from tidings.domain.phones import normalize_phone
from tidings.errors import InvalidInput


class CustomerStatus(enum.StrEnum):
    """Whether a customer may be reached on a channel."""

    SUBSCRIBED = "subscribed"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"
    COMPLAINED = "complained"


@dataclass(frozen=True, kw_only=True)
class CustomerInput:
    """One valid customer as given by a caller, in normal form (see the module docstring)."""

    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)
    email_status: CustomerStatus | None = None
    sms_status: CustomerStatus | None = None


#: The fields a customer object may carry, in the contract's order.
CUSTOMER_FIELDS = (
    "external_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "attributes",
    "email_status",
    "sms_status",
)
_MAX_LENGTH = {"external_id": 255, "first_name": 255, "last_name": 255}
_MAX_ATTRIBUTE_KEY = 255
_STATUSES = ", ".join(s.value for s in CustomerStatus)


def validate_customer(data: Mapping[str, Any], *, region: str | None = None) -> CustomerInput:
    """The customer described by the JSON object ``data``, in normal form;
    ``region`` is the country whose national phone numbers are accepted
    (``TIDINGS_DEFAULT_REGION``; None: international form only).

    Raises :class:`InvalidInput` (with ``field`` set) for an unknown key, a
    value of the wrong type, an invalid email or phone, an unknown status, bad
    attributes, or when neither ``email`` nor ``external_id`` is given.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("A customer must be a JSON object.")
    unknown = sorted(str(key) for key in data if key not in CUSTOMER_FIELDS)
    if unknown:
        names = ", ".join(f'"{key}"' for key in unknown)
        noun = "field" if len(unknown) == 1 else "fields"
        raise InvalidInput(
            f"Unknown customer {noun} {names}; the fields are {', '.join(CUSTOMER_FIELDS)}, "
            'and other data belongs in "attributes".',
            field=unknown[0],
        )
    external_id = _external_id(data.get("external_id"))
    email = _email(data.get("email"))
    if email is None and external_id is None:
        raise InvalidInput(
            'A customer needs an "email" or an "external_id" to be identified.', field="email"
        )
    return CustomerInput(
        external_id=external_id,
        email=email,
        phone=_phone(data.get("phone"), region),
        first_name=_text("first_name", data.get("first_name")),
        last_name=_text("last_name", data.get("last_name")),
        attributes=_attributes(data.get("attributes")),
        email_status=_status("email_status", data.get("email_status")),
        sms_status=_status("sms_status", data.get("sms_status")),
    )


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidInput(f'"{name}" must be a string.', field=name)
    value = value.strip()
    limit = _MAX_LENGTH.get(name)
    if limit is not None and len(value) > limit:
        raise InvalidInput(f'"{name}" is longer than {limit} characters.', field=name)
    return value or None


def _external_id(value: object) -> str | None:
    # Shops often number their customers; an integer id is the same id as its digits.
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return _text("external_id", value)


# A plain ASCII dot-atom local part (RFC 5322 3.2.3), the form nearly every
# address has; anything else takes email_validator's full path.
_PLAIN_LOCAL = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


@functools.lru_cache(maxsize=4096)
def _domain(domain: str) -> str:
    """The normalised domain; validating it dominates the cost of an address, and
    a customer list shares few domains, so each is checked once."""
    return validate_email(f"a@{domain}", check_deliverability=False).domain


def _email(value: object) -> str | None:
    text = _text("email", value)
    if text is None:
        return None
    try:
        local, at, domain = text.rpartition("@")
        if at and len(local) <= 64 and _PLAIN_LOCAL.fullmatch(local):
            return f"{local}@{_domain(domain)}".lower()
        checked = validate_email(text, check_deliverability=False)
    except EmailNotValidError as exc:
        message = f'"email" {text!r} is not a valid address: {exc}'
        raise InvalidInput(message, field="email") from exc
    return checked.normalized.lower()


def _phone(value: object, region: str | None) -> str | None:
    """E.164; see :func:`tidings.domain.phones.normalize_phone`."""
    text = _text("phone", value)
    if text is None:
        return None
    return normalize_phone(text, region=region)


def _status(name: str, value: object) -> CustomerStatus | None:
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip().lower()
        if not text:
            return None
        try:
            return CustomerStatus(text)
        except ValueError:
            pass
    raise InvalidInput(f'"{name}" must be one of {_STATUSES}; got {value!r}.', field=name)


def _attributes(value: object) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput('"attributes" must be an object.', field="attributes")
    result: dict[str, Any] = {}
    for key, item in value.items():
        if not isinstance(key, str) or not key.strip():
            raise InvalidInput('"attributes" keys must be non-empty strings.', field="attributes")
        if len(key) > _MAX_ATTRIBUTE_KEY:
            raise InvalidInput(
                f'"attributes" key {key[:40]!r}... is longer than {_MAX_ATTRIBUTE_KEY} characters.',
                field="attributes",
            )
        ok = _is_scalar(item) or (isinstance(item, list) and all(map(_is_scalar, item)))
        if not ok:
            raise InvalidInput(
                f'"attributes.{key}" must be a string, number, boolean, null or a list of those.',
                field=f"attributes.{key}",
            )
        result[key] = list(item) if isinstance(item, list) else item
    return result


def _is_scalar(value: object) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    return value is None or isinstance(value, str | int | bool)


# --- CSV ----------------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class CsvResult:
    """A parsed file: the good lines and the bad ones, by 1-based line number
    (the header is line 1; a quoted field spanning lines is counted by the line
    its record starts on)."""

    rows: list[tuple[int, CustomerInput]]
    errors: list[tuple[int, str]]
    encoding: str
    delimiter: str


#: Columns that map to customer fields; every other column is an attribute.
CSV_COLUMNS = tuple(name for name in CUSTOMER_FIELDS if name != "attributes")


def parse_customers_csv(
    data: bytes, *, encoding: str | None = None, delimiter: str | None = None,
    mapping: Mapping[str, str] | None = None,
    region: str | None = None,
) -> CsvResult:
    """Parse a CSV file of customers, all of it (see :func:`customer_lines`).

    ``encoding`` defaults to detection: a byte-order mark, else UTF-8, else
    the most plausible of ``charset_normalizer``'s decodings, cp1252 winning a
    tie (see :func:`tidings.domain.csvfiles.read_csv`). ``delimiter``
    defaults to detection among ``, ; TAB |``. Header names are matched to
    :data:`CSV_COLUMNS` ignoring case, surrounding blanks, and spaces or dashes
    standing for ``_``; other columns become attributes under their header as
    written, typed by :func:`~tidings.domain.attributes.cell_value`, with empty
    cells left out. ``mapping`` (header -> target, see
    :mod:`tidings.domain.columns`) says otherwise for the columns it names.
    Blank lines are skipped.

    Raises :class:`InvalidInput` when the file cannot be decoded, has no
    header, has neither an ``email`` nor an ``external_id`` column, or repeats
    a column, or for a mapping that does not fit the header. A bad line does
    not raise: it becomes an entry of ``errors`` whose message names the field.
    ``region`` as for :func:`validate_customer`.
    """
    table = read_csv(data, what="customers", encoding=encoding, delimiter=delimiter)
    rows: list[tuple[int, CustomerInput]] = []
    errors: list[tuple[int, str]] = []
    for line, item in customer_lines(table, mapping=mapping, region=region):
        if isinstance(item, CustomerInput):
            rows.append((line, item))
        else:
            errors.append((line, item))
    encoding, delimiter = table.encoding, table.delimiter
    return CsvResult(rows=rows, errors=errors, encoding=encoding, delimiter=delimiter)


def customer_lines(table: CsvText, *, mapping: Mapping[str, str] | None = None,
                   region: str | None = None) -> Iterator[tuple[int, CustomerInput | str]]:
    """Each line of a CSV file of customers as it is read: ``(line, customer)``,
    or ``(line, message)`` for a bad line, whose message names the field; see
    :func:`parse_customers_csv` for the columns, ``mapping`` and ``region``.
    Lazy: a caller may import in chunks. Raises :class:`InvalidInput` (before
    yielding anything) for a header that does not fit, and
    :class:`~tidings.domain.csvfiles.BrokenCsv` where the file stops being CSV."""
    header: list[str] | None = None
    found: list[str] = []
    for line, cells in table.records():
        if header is None:
            if mapping is None:
                _header(cells)  # the contract's checks, in its words
            header, found = cells, columns.targets(cells, mapping)
            continue
        if len(cells) > len(header) and any(cells[len(header) :]):
            yield line, f"The line has {len(cells)} fields but the header has {len(header)}."
            continue
        try:
            fields, texts = columns.fields_of(header, found, cells)
            fields["attributes"] = {key: cell_value(text) for key, text in texts.items()}
            yield line, validate_customer(fields, region=region)
        except InvalidInput as exc:
            yield line, exc.message
    if header is None:  # pragma: no cover - a non-blank text always yields a record
        raise InvalidInput("The file has no header line.", field="file")


def _header(cells: list[str]) -> list[str | None]:
    """Column names: a contract column by its canonical name, any other as written,
    ``None`` for a nameless column (often a trailing delimiter), whose cells are ignored."""
    columns: list[str | None] = []
    for cell in cells:
        canonical = re.sub(r"[\s\-]+", "_", cell.lower())
        name = canonical if canonical in CSV_COLUMNS else (cell or None)
        if name is not None and name in columns:
            raise InvalidInput(f'The header repeats the column "{cell}".', field="file")
        columns.append(name)
    if "email" not in columns and "external_id" not in columns:
        raise InvalidInput(
            'The header line needs an "email" or an "external_id" column; '
            f"found {', '.join(repr(c) for c in cells)}.",
            field="file",
        )
    return columns
