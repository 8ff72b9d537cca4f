"""Engagement and conversion rules: machine hits, order attribution, statistics.

Pure: standard library only. The SQL that feeds these rules lives in
:mod:`tidings.store.engagement`; the use cases in :mod:`tidings.services.tracking`,
:mod:`tidings.services.orders` and :mod:`tidings.services.stats`.

Machine opens and clicks
    Security gateways (Mimecast, Proofpoint, Barracuda, Microsoft Safe Links,
    ...) and link-preview bots fetch every link and image of a message to
    inspect it. Counting those would make every recipient "opened" and
    "clicked", and would send a chain's "clicked" step to people who never
    clicked. :func:`is_machine` recognises them by two signs that never
    describe a person: a ``HEAD`` request (scanners probe with ``HEAD``; a
    browser or mail client opening a link or an image uses ``GET``), and a
    ``User-Agent`` naming a known scanner or bot (:data:`MACHINE_AGENTS`).
    A machine hit is answered like any other (the pixel, the redirect) but
    recorded nowhere: no first-open or first-click time, no counter.

    Deliberately not used: timing rules ("clicked within 2 s of delivery",
    "every link within 2 s"). Tidings only knows when it handed a message to
    its server, not when it reached the mailbox, and a person reading at once
    is indistinguishable by time alone from a fast scanner; a timing rule
    would also hide real engagement from anyone scripting against the API.
    Image proxies that fetch on a person's behalf (Gmail's ``GoogleImageProxy``)
    are counted: they fetch when the message is opened. Apple Mail Privacy
    Protection prefetches images with an ordinary browser agent from Apple's
    addresses; it cannot be told apart by agent and is counted as an open.

Attribution
    :func:`attribute` picks, for one order, the mailing that gets the credit:
    among the messages that reached the customer, the one reached last before
    the order, provided the order falls within that mailing's
    ``conversion.window_days`` of it. What "reached" means is the mailing's
    ``conversion.basis``: ``received`` (sent and not bounced; the moment is
    the send time), ``opened`` (the first open) or ``clicked`` (the first click).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from tidings.domain.bounds import bounded_moment
from tidings.domain.csvfiles import BrokenCsv, read_csv
from tidings.errors import InvalidInput

# --------------------------------------------------------------------------- machines

#: Substrings (lower case) of the ``User-Agent`` of link scanners, security
#: gateways and preview bots. Generic HTTP libraries are deliberately absent.
MACHINE_AGENTS: tuple[str, ...] = (
    "barracuda", "mimecast", "proofpoint", "ppops-", "urldefense", "messagelabs", "symantec",
    "trendmicro", "trend micro", "sophos", "fireeye", "forcepoint", "ironport", "zscaler",
    "cloudmark", "fortiguard", "mcafee", "checkpoint", "paloalto", "safelinks", "bingpreview",
    "googlebot", "bingbot", "slackbot", "twitterbot", "linkedinbot", "applebot", "yandexbot",
    "duckduckbot", "baiduspider", "facebookexternalhit", "ahrefsbot", "semrushbot", "petalbot",
    "headlesschrome", "phantomjs",
)
_MACHINE_WORDS = re.compile(r"\b(?:crawler|spider|scanner|link ?checker)\b")


def is_machine(user_agent: str | None, *, method: str = "GET") -> bool:
    """True when a hit on a tracking URL comes from a machine, not a person.

    See the module docstring: a ``HEAD`` request, or a ``User-Agent``
    containing one of :data:`MACHINE_AGENTS` or the words crawler, spider,
    scanner or link checker. An absent agent is not held against the caller.
    """
    if method.upper() == "HEAD":
        return True
    agent = (user_agent or "").lower()
    if not agent:
        return False
    return any(name in agent for name in MACHINE_AGENTS) or bool(_MACHINE_WORDS.search(agent))


# --------------------------------------------------------------------------- attribution


class Basis:
    """The values of ``conversion.basis``."""

    RECEIVED = "received"
    OPENED = "opened"
    CLICKED = "clicked"


@dataclass(frozen=True, kw_only=True)
class Reach:
    """One message that went to the customer, with its mailing's conversion settings.

    Only messages that were sent and did not bounce are reaches; ``opened_at``
    and ``clicked_at`` are the first open and first click, if any.
    """

    message_id: int
    mailing_id: int
    sent_at: datetime
    opened_at: datetime | None
    clicked_at: datetime | None
    window_days: int
    basis: str

    @property
    def reached_at(self) -> datetime | None:
        """When the message counts as having reached the customer under its basis."""
        if self.basis == Basis.OPENED:
            return self.opened_at
        if self.basis == Basis.CLICKED:
            return self.clicked_at
        return self.sent_at


def attribute(ordered_at: datetime, reaches: Iterable[Reach]) -> Reach | None:
    """The reach an order placed at ``ordered_at`` is credited to, or None.

    A reach qualifies when its :attr:`Reach.reached_at` is known, not after
    the order, and at most ``window_days`` days before it (the boundary is
    inside). Of those, the latest wins; equal times go to the higher message id.
    """
    best: Reach | None = None
    best_key: tuple[datetime, int] | None = None
    for reach in reaches:
        at = reach.reached_at
        if at is None or at > ordered_at or ordered_at - at > timedelta(days=reach.window_days):
            continue
        key = (at, reach.message_id)
        if best_key is None or key > best_key:
            best, best_key = reach, key
    return best


#: How far back attribution looks at most: the largest ``window_days``.
LONGEST_WINDOW = timedelta(days=365)


# --------------------------------------------------------------------------- money

CENT = Decimal("0.01")
MAX_TOTAL = Decimal("999999999999.99")  # Numeric(14, 2)


def money(value: Decimal | int | float | str | None) -> str:
    """A money amount as a string with exactly two decimals, rounded half up."""
    return str(Decimal(str(value or 0)).quantize(CENT, rounding=ROUND_HALF_UP))


def rate(part: int | float | Decimal, whole: int | float | Decimal) -> float:
    """``part / whole`` rounded to 4 decimals; 0.0 when ``whole`` is 0."""
    if not whole:
        return 0.0
    return round(float(part) / float(whole), 4)


def parse_total(value: Any, *, field: str = "total") -> Decimal:
    """An order total: a number or numeric string, 0 or more, at most two decimals.

    ``"12.5"``, ``12.5`` and ``"12.50"`` are all 12.50. Raises ``InvalidInput``.
    """
    if isinstance(value, bool) or value is None or value == "":
        raise InvalidInput(f"{field} is required: the order's amount, like 19.99.", field=field)
    try:
        amount = Decimal(value.strip() if isinstance(value, str) else str(value))
    except (InvalidOperation, ValueError):
        raise InvalidInput(f"{field} must be an amount like 19.99; got {value!r}.",
                           field=field) from None
    if not amount.is_finite() or amount.adjusted() > 20:  # quantize fails far beyond MAX_TOTAL
        raise InvalidInput(f"{field} must be an amount like 19.99; got {str(value)[:40]!r}.",
                           field=field)
    if amount < 0:
        raise InvalidInput(f"{field} cannot be negative.", field=field)
    if amount != amount.quantize(CENT):
        raise InvalidInput(f"{field} has more than two decimals: {value}.", field=field)
    if amount > MAX_TOTAL:
        raise InvalidInput(f"{field} is too large.", field=field)
    return amount.quantize(CENT)


# --------------------------------------------------------------------------- orders


@dataclass(frozen=True, kw_only=True)
class OrderInput:
    """One valid order as given by a caller: exactly one of ``customer_id`` and
    ``customer_email``; ``ordered_at`` is timezone-aware; ``total`` has two decimals."""

    external_id: str
    customer_id: int | None = None
    customer_email: str | None = None
    total: Decimal
    ordered_at: datetime
    utm: dict[str, str] = field(default_factory=dict)


ORDER_FIELDS = ("external_id", "customer_id", "customer_email", "total", "created_at", "utm")


def _parse_time(value: Any) -> datetime:
    if isinstance(value, datetime):
        moment = value
    elif isinstance(value, str) and value.strip():
        text = value.strip()
        try:
            moment = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise InvalidInput(
                f"created_at must be an ISO 8601 time with an offset, like "
                f"2024-05-01T12:30:00+02:00; got {value!r}.", field="created_at") from None
    else:
        raise InvalidInput("created_at is required: when the order was placed (ISO 8601).",
                           field="created_at")
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise InvalidInput("created_at must carry a timezone offset, like +00:00 or Z.",
                           field="created_at")
    return bounded_moment(moment, "created_at")


def _parse_utm(value: Any) -> dict[str, str]:
    if value in (None, ""):
        return {}
    if not isinstance(value, Mapping):
        raise InvalidInput("utm must be an object of tag names and values.", field="utm")
    utm: dict[str, str] = {}
    for key, tag in value.items():
        if not isinstance(key, str) or not key or len(key) > 64:
            raise InvalidInput("utm tag names must be short strings.", field="utm")
        if tag is None or tag == "":
            continue
        if not isinstance(tag, str) or len(tag) > 255:
            raise InvalidInput(f"utm.{key} must be a string of at most 255 characters.",
                               field=f"utm.{key}")
        utm[key] = tag
    return utm


def validate_order(data: Mapping[str, Any]) -> OrderInput:
    """Turn one order object into an :class:`OrderInput`, or raise ``InvalidInput``
    whose ``field`` names the bad field.

    Fields: ``external_id`` (required, the shop's order number), ``customer_id``
    or ``customer_email`` (one of them), ``total``, ``created_at`` (when the
    order was placed, ISO 8601 with an offset) and an optional ``utm`` object.
    """
    if not isinstance(data, Mapping):
        raise InvalidInput("An order must be a JSON object.", field="body")
    unknown = set(data) - set(ORDER_FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown order fields: {', '.join(sorted(unknown))}.",
                           field=sorted(unknown)[0])
    raw_id = data.get("external_id")
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int):
        raise InvalidInput("external_id is required: the shop's own order number.",
                           field="external_id")
    external_id = str(raw_id).strip()
    if not external_id or len(external_id) > 255:
        raise InvalidInput("external_id must be 1 to 255 characters.", field="external_id")
    customer_id = data.get("customer_id")
    email = data.get("customer_email")
    if customer_id in ("", None):
        customer_id = None
    if email in ("", None):
        email = None
    if customer_id is None and email is None:
        raise InvalidInput("Say whose order it is: customer_id or customer_email.",
                           field="customer_id")
    if customer_id is not None and email is not None:
        raise InvalidInput("Give customer_id or customer_email, not both.", field="customer_id")
    if customer_id is not None:
        if isinstance(customer_id, str) and customer_id.strip().isdigit():
            customer_id = int(customer_id.strip())
        if isinstance(customer_id, bool) or not isinstance(customer_id, int) or customer_id < 1:
            raise InvalidInput("customer_id must be a customer's id (a positive whole number).",
                               field="customer_id")
    if email is not None:
        if not isinstance(email, str) or "@" not in email:
            raise InvalidInput("customer_email must be an email address.", field="customer_email")
        email = email.strip().lower()
    return OrderInput(
        external_id=external_id, customer_id=customer_id, customer_email=email,
        total=parse_total(data.get("total")), ordered_at=_parse_time(data.get("created_at")),
        utm=_parse_utm(data.get("utm")),
    )


# --------------------------------------------------------------------------- CSV

#: Header names accepted for each order field (compared lower case, blanks and
#: dashes read as ``_``); ``utm_*`` columns go into ``utm``.
CSV_ALIASES = {
    "external_id": "external_id", "order_id": "external_id", "id": "external_id",
    "customer_id": "customer_id",
    "customer_email": "customer_email", "email": "customer_email",
    "total": "total", "amount": "total",
    "created_at": "created_at", "ordered_at": "created_at", "date": "created_at",
}


@dataclass(frozen=True, kw_only=True)
class OrdersCsv:
    """A parsed orders file: good lines and bad lines, each with its line number."""

    orders: list[tuple[int, OrderInput]]
    errors: list[tuple[int, str]]


def _columns(cells: Sequence[str]) -> list[str | None]:
    columns: list[str | None] = []
    for cell in cells:
        name = re.sub(r"[\s\-]+", "_", cell.strip().lower())
        column = CSV_ALIASES.get(name) or (name if name.startswith("utm_") else None)
        if column is not None and column in columns:
            raise InvalidInput(f'The header has the column "{cell}" twice.', field="file")
        columns.append(column)
    missing = [c for c in ("external_id", "total", "created_at") if c not in columns]
    if "customer_id" not in columns and "customer_email" not in columns:
        missing.append("customer_id or customer_email")
    if missing:
        raise InvalidInput(
            f"The header line lacks {', '.join(missing)}; found "
            f"{', '.join(repr(c) for c in cells)}.", field="file")
    return columns


def parse_orders_csv(data: bytes) -> OrdersCsv:
    """Parse a CSV file of orders: a header line, then one order per line.

    Columns (see :data:`CSV_ALIASES`): ``external_id``, ``customer_id`` or
    ``customer_email``, ``total``, ``created_at``, and any ``utm_*``; others
    are ignored. Encoding and delimiter are detected as for customers
    (:func:`tidings.domain.csvfiles.read_csv`). Blank lines are skipped; line
    numbers count every physical line.
    Raises ``InvalidInput`` when the file is empty or its header lacks a
    required column; a bad line becomes an entry of ``errors`` instead.
    """
    table = read_csv(data, what="orders")
    orders: list[tuple[int, OrderInput]] = []
    errors: list[tuple[int, str]] = []
    columns: list[str | None] | None = None
    try:
        for line, cells in table.records():
            if columns is None:
                columns = _columns(cells)
                continue
            values: dict[str, Any] = {}
            utm: dict[str, str] = {}
            for name, cell in zip(columns, cells, strict=False):
                if name is None or not cell:
                    continue
                if name.startswith("utm_"):
                    utm[name] = cell
                else:
                    values[name] = cell
            try:
                orders.append((line, validate_order({**values, "utm": utm})))
            except InvalidInput as exc:
                errors.append((line, exc.message))
    except BrokenCsv as exc:
        errors.append((exc.line, f"The CSV cannot be read from here on: {exc.message}"))
    if columns is None:
        raise InvalidInput("The file has no header line.", field="file")
    return OrdersCsv(orders=orders, errors=errors)


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True, kw_only=True)
class Counts:
    """What statistics are computed from: message counts by status and the
    mailing's running counters (see :func:`statistics`)."""

    audience: int
    sent: int
    failed: int
    skipped: int
    hard_bounced: int
    soft_bounced: int
    confirmed_delivered: int
    opened: int
    clicked: int
    unsubscribed: int
    complained: int
    orders: int
    revenue: Decimal
    converted: int
    #: SMS: messages whose receipts said undelivered (or deleted), expired, rejected.
    undelivered: int = 0
    expired: int = 0
    rejected: int = 0

    def __add__(self, other: Counts) -> Counts:
        values = {name: getattr(self, name) + getattr(other, name)
                  for name in self.__dataclass_fields__}
        return Counts(**values)


ZERO = Counts(audience=0, sent=0, failed=0, skipped=0, hard_bounced=0, soft_bounced=0,
              confirmed_delivered=0, opened=0, clicked=0, unsubscribed=0, complained=0, orders=0,
              revenue=Decimal(0), converted=0)


def statistics(counts: Counts, *, reached: int | None = None, sms: bool = False) -> dict[str, Any]:
    """The statistics of a mailing (or of a whole chain) as the API shows them.

    For SMS (``sms``) ``delivered`` is what delivery receipts confirmed
    (``confirmed_delivered``), and ``undelivered`` counts the messages a
    receipt reported undelivered, expired or rejected (``receipts`` has each);
    a message without a receipt is in neither.

    - ``sent``: messages the server accepted; ``failed``: refused;
      ``bounced``: accepted, then bounced back (hard and soft);
      ``delivered`` = ``sent`` - ``bounced``;
    - ``opened``, ``clicked``, ``unsubscribed``, ``complained``: messages
      with at least one such event (each counted once per message);
    - ``orders`` and ``revenue`` (a string with two decimals): orders
      attributed to the mailing; ``conversion_rate``: customers with an
      attributed order as a share of ``reached`` (default: ``delivered``);
    - ``rates``: ``sent`` of the audience (every recipient, skipped ones
      included); ``delivered`` of ``sent``; ``failed`` of what was handed to
      the server (``sent`` + ``failed``); ``opened``, ``clicked``,
      ``unsubscribed``, ``complained`` of ``delivered``; ``click_to_open``
      (``clicked`` of ``opened``); ``conversion`` (= ``conversion_rate``).
      Rates are fractions of 1 rounded to 4 decimals, 0.0 when undefined;
    - ``revenue_per_recipient``: ``revenue`` / ``delivered``, two decimals.
    """
    bounced = counts.hard_bounced + counts.soft_bounced
    delivered = counts.confirmed_delivered if sms else max(counts.sent - bounced, 0)
    reached = delivered if reached is None else reached
    conversion = rate(counts.converted, reached)
    per_recipient = counts.revenue / delivered if delivered else Decimal(0)
    undelivered = counts.undelivered + counts.expired + counts.rejected
    extra: dict[str, Any] = {}
    if sms:
        extra = {"undelivered": undelivered,
                 "receipts": {"delivered": counts.confirmed_delivered, "undelivered": counts.undelivered,
                              "expired": counts.expired, "rejected": counts.rejected,
                              "none": max(counts.sent - counts.confirmed_delivered - undelivered, 0)}}
    return {**extra,
        "audience": counts.audience,
        "sent": counts.sent,
        "delivered": delivered,
        "failed": counts.failed,
        "skipped": counts.skipped,
        "bounced": bounced,
        "hard_bounced": counts.hard_bounced,
        "soft_bounced": counts.soft_bounced,
        "confirmed_delivered": counts.confirmed_delivered,
        "opened": counts.opened,
        "clicked": counts.clicked,
        "unsubscribed": counts.unsubscribed,
        "complained": counts.complained,
        "orders": counts.orders,
        "converted": counts.converted,
        "revenue": money(counts.revenue),
        "revenue_per_recipient": money(per_recipient),
        "conversion_rate": conversion,
        "rates": {
            "sent": rate(counts.sent, counts.audience),
            "delivered": rate(delivered, counts.sent),
            "failed": rate(counts.failed, counts.sent + counts.failed),
            "opened": rate(counts.opened, delivered),
            "clicked": rate(counts.clicked, delivered),
            "click_to_open": rate(counts.clicked, counts.opened),
            "unsubscribed": rate(counts.unsubscribed, delivered),
            "complained": rate(counts.complained, delivered),
            "conversion": conversion,
        },
    }
