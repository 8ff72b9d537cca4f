"""Customers: add and upsert, edit, subscribe and unsubscribe per channel,
delete, erase, the customer list, and exports of a segment as CSV.

- **Delete** removes the customer: they leave every list and segment, their
  queued messages are withdrawn (``skipped``, reason ``deleted``), and the
  record of what was sent to them (their address on past messages, their
  orders) stays for the mailings' statistics. A deleted customer who had
  unsubscribed is subscribed again if the shop adds them anew.
- **Erase** removes their personal data for good and keeps the statistics
  without it; what stays and what is remembered (a keyed hash of an address
  they had objected on) is :mod:`tidings.domain.erasure`.
- Editing, deleting and erasing are recorded in the audit log with who did
  it; the log names the customer by id only.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain import erasure
from tidings.domain.actors import Actor
from tidings.domain.customers import (
    CSV_COLUMNS,
    CUSTOMER_FIELDS,
    CustomerInput,
    CustomerStatus,
    validate_customer,
)
from tidings.domain.segments import parse_rules
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import customers as store
from tidings.store import erasure as erased
from tidings.store import packages as message_store
from tidings.store import segments as segment_store
from tidings.store.segments import compile_rules

MAX_BATCH = 10_000
MAX_PAGE = 500
#: The status column of each channel.
STATUS_COLUMNS = {"email": "email_status", "sms": "sms_status"}
ADDRESS_COLUMNS = {"email": "email", "sms": "phone"}
#: The columns of an export, before the attributes (one column each).
EXPORT_COLUMNS = ("id", *CSV_COLUMNS, "orders_count", "orders_total", "last_order_at",
                  "created_at")
EXPORT_BATCH = 1000
SUBSCRIBED = CustomerStatus.SUBSCRIBED.value


def customer_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "external_id": row["external_id"], "email": row["email"],
        "phone": row["phone"], "first_name": row["first_name"], "last_name": row["last_name"],
        "attributes": row["attributes"] or {}, "email_status": row["email_status"],
        "sms_status": row["sms_status"], "orders_count": row["orders_count"],
        "orders_total": str(row["orders_total"]),
        "last_order_at": row["last_order_at"].isoformat() if row["last_order_at"] else None,
        "created_at": row["created_at"].isoformat(), "updated_at": row["updated_at"].isoformat(),
    }


def _not_found(customer_id: int) -> NotFound:
    return NotFound(f"There is no customer {customer_id}.", code="customer_not_found",
                    manager_message="This customer does not exist (any more).")


def _row(conn: sa.Connection, customer_id: int) -> dict[str, Any]:
    row = store.get(conn, customer_id)
    if row is None:
        raise _not_found(customer_id)
    return row


# -- adding -------------------------------------------------------------------------------


def honour_erasures(ctx: Context, conn: sa.Connection, items: list[CustomerInput],
                    ids: list[int]) -> None:
    """Customers just written whose address or phone belonged to an erased
    customer who had objected take that status instead of ``subscribed``
    (see :mod:`tidings.domain.erasure`). Costs one query when nobody was erased."""
    if not items or not erased.any_remembered(conn):
        return
    wanted: dict[str, tuple[str, int]] = {}
    for item, customer_id in zip(items, ids, strict=True):
        for channel, address in (("email", item.email), ("sms", item.phone)):
            if address:
                wanted[erasure.contact_digest(ctx.secret, channel, address)] = (channel, customer_id)
    found = erased.remembered(conn, list(wanted))
    for digest, status in found.items():
        channel, customer_id = wanted[digest]
        store.set_statuses(conn, [customer_id], STATUS_COLUMNS[channel], status,
                           only_from=SUBSCRIBED, now=ctx.now())


def upsert_customer(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    item = validate_customer(data, region=ctx.settings.default_region)
    with ctx.tx() as conn:
        ids, _ = store.upsert_many(conn, [item], now=ctx.now())
        honour_erasures(ctx, conn, [item], ids)
        return customer_json(_row(conn, ids[0]))


def upsert_customers(ctx: Context, items: list[Any]) -> list[int]:
    """All or nothing: one invalid customer refuses the whole batch, naming its index."""
    if not isinstance(items, list):
        raise InvalidInput("customers must be a list.", field="customers")
    if len(items) > MAX_BATCH:
        raise InvalidInput(f"A batch holds at most {MAX_BATCH} customers; this one has {len(items)}.",
                           field="customers")
    valid = []
    for index, data in enumerate(items):
        if not isinstance(data, dict):
            raise InvalidInput(f"customers[{index}]: each customer must be an object.",
                               field=f"customers[{index}]")
        try:
            valid.append(validate_customer(data, region=ctx.settings.default_region))
        except InvalidInput as exc:
            field = f"customers[{index}].{exc.field}" if exc.field else f"customers[{index}]"
            raise InvalidInput(f"customers[{index}]: {exc.message}", field=field) from None
    with ctx.tx() as conn:
        ids, _ = store.upsert_many(conn, valid, now=ctx.now())
        honour_erasures(ctx, conn, valid, ids)
    return ids


def _taken(conn: sa.Connection, item: CustomerInput, *, other_than: int | None) -> None:
    """Refuse an email or external id that another customer has (409)."""
    for field, value, find in (("email", item.email, store.find_by_email),
                               ("external_id", item.external_id, store.find_by_external_id)):
        found = find(conn, value) if value else None
        if found is not None and found["id"] != other_than:
            words = "email address" if field == "email" else "external id"
            raise Conflict(f'Customer {found["id"]} already has the {field} {value!r}.',
                           code="customer_exists",
                           manager_message=f"Another customer already has this {words}: "
                                           f"{value}.")


def create_customer(ctx: Context, data: dict[str, Any], *, actor: Actor) -> dict[str, Any]:
    """A new customer (the web UI's Add customer); unlike the API's upsert, an
    email or external id that exists is refused (``Conflict``, ``customer_exists``)."""
    item = validate_customer(data, region=ctx.settings.default_region)
    with ctx.tx() as conn:
        _taken(conn, item, other_than=None)
        ids, _ = store.upsert_many(conn, [item], now=ctx.now())
        honour_erasures(ctx, conn, [item], ids)
        audit.record(conn, actor, "customer.create", f"customer {ids[0]}")
        return customer_json(_row(conn, ids[0]))


# -- editing ------------------------------------------------------------------------------


def _patched(current: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The customer object after ``data`` (a JSON merge patch, RFC 7396): a given
    field replaces, ``null`` clears it; ``attributes`` merge key by key, ``null``
    removing a key. Statuses cannot be cleared."""
    if not isinstance(data, dict):
        raise InvalidInput("The body must be a JSON object of the fields to change.")
    unknown = sorted(str(k) for k in data if k not in CUSTOMER_FIELDS)
    if unknown:
        raise InvalidInput(f'Unknown customer field "{unknown[0]}"; the fields are '
                           f"{', '.join(CUSTOMER_FIELDS)}.", field=unknown[0])
    for status in STATUS_COLUMNS.values():
        if status in data and data[status] is None:
            raise InvalidInput(f'"{status}" cannot be cleared; use one of subscribed, '
                               "unsubscribed, bounced, complained.", field=status)
    merged = {f: current[f] for f in CSV_COLUMNS} | {"attributes": dict(current["attributes"] or {})}
    for key, value in data.items():
        if key != "attributes":
            merged[key] = value
        elif value is None:
            merged["attributes"] = {}
        elif isinstance(value, dict):
            for name, item in value.items():
                if item is None:
                    merged["attributes"].pop(name, None)
                else:
                    merged["attributes"][name] = item
        else:
            merged["attributes"] = value  # refused by validation, naming the field
    return merged


def update_customer(ctx: Context, customer_id: int, data: dict[str, Any], *,
                    actor: Actor) -> dict[str, Any]:
    """Change any of the contract's fields (``PATCH``; see :func:`_patched`).

    Subscribing a customer again on a channel (its status set to
    ``subscribed``) is a manager's deliberate choice: it also lifts what keeps
    the address from mail, the suppression list's entry and an erased
    customer's remembered status. Raises ``NotFound``, ``InvalidInput`` naming
    the field, ``Conflict`` (``customer_exists``) for an email or external id
    another customer has."""
    with ctx.tx() as conn:
        current = _row(conn, customer_id)
        item = validate_customer(_patched(current, data), region=ctx.settings.default_region)
        _taken(conn, item, other_than=customer_id)
        values: dict[str, Any] = {}
        for field in CSV_COLUMNS:
            value = getattr(item, field)
            value = value.value if isinstance(value, CustomerStatus) else value
            if value is None and field in STATUS_COLUMNS.values():
                continue
            if value != current[field]:
                values[field] = value
        if item.attributes != (current["attributes"] or {}):
            values["attributes"] = item.attributes
        if not values:
            return customer_json(current)
        store.update_fields(conn, customer_id, values, now=ctx.now())
        resubscribed = [channel for channel, column in STATUS_COLUMNS.items()
                        if values.get(column) == SUBSCRIBED]
        moved = [c for c, column in ADDRESS_COLUMNS.items() if column in values and values[column]]
        if any(c not in resubscribed for c in moved):
            honour_erasures(ctx, conn, [item], [customer_id])
        for channel in resubscribed:
            address = getattr(item, ADDRESS_COLUMNS[channel])
            if address:
                erased.forget(conn, [erasure.contact_digest(ctx.secret, channel, address)])
                if channel == "email":
                    erased.forget_suppressions(conn, [address])
        changed = {k: v for k, v in values.items() if k in STATUS_COLUMNS.values()}
        audit.record(conn, actor, "customer.update", f"customer {customer_id}",
                     {"fields": sorted(values), **changed})
        return customer_json(_row(conn, customer_id))


def set_subscription(ctx: Context, customer_id: int, channel: str, subscribed: bool, *,
                     actor: Actor) -> dict[str, Any]:
    """Subscribe or unsubscribe the customer on ``channel`` (``email`` or ``sms``)."""
    if channel not in STATUS_COLUMNS:
        raise InvalidInput(f"Unknown channel {channel!r}; it is email or sms.", field="channel")
    status = SUBSCRIBED if subscribed else CustomerStatus.UNSUBSCRIBED.value
    return update_customer(ctx, customer_id, {STATUS_COLUMNS[channel]: status}, actor=actor)


def delete_customer(ctx: Context, customer_id: int, *, actor: Actor) -> None:
    """Remove the customer (see the module docstring for what stays)."""
    with ctx.tx() as conn:
        _row(conn, customer_id)
        withdrawn = erased.withdraw_queued(conn, customer_id, reason=erasure.WITHDRAWN["delete"])
        store.delete(conn, customer_id)
        audit.record(conn, actor, "customer.delete", f"customer {customer_id}",
                     {"withdrawn_messages": withdrawn})


def erase_customer(ctx: Context, customer_id: int, *, actor: Actor) -> dict[str, Any]:
    """Erase the customer's personal data for good (:mod:`tidings.domain.erasure`).

    Returns ``{"id", "erased": true, "suppressed": [channels]}``, the channels
    on which the customer's objection is remembered as a hash."""
    with ctx.tx() as conn:
        row = _row(conn, customer_id)
        withdrawn = erased.withdraw_queued(conn, customer_id, reason=erasure.WITHDRAWN["erase"])
        statuses = {channel: row[STATUS_COLUMNS[channel]] for channel in STATUS_COLUMNS
                    if row[ADDRESS_COLUMNS[channel]]}
        if row["email"] and statuses.get("email") == SUBSCRIBED:
            statuses["email"] = erased.suppression_reason(conn, row["email"]) or SUBSCRIBED
        keep = erasure.remembered(statuses)
        addresses = erased.addresses_used(conn, customer_id) | {
            a for a in (row["email"], row["phone"]) if a}
        erased.forget_suppressions(conn, addresses)
        erased.pseudonymise(conn, customer_id, erasure.pseudonym())
        store.delete(conn, customer_id)
        erased.remember(conn, {erasure.contact_digest(ctx.secret, channel,
                                                      row[ADDRESS_COLUMNS[channel]]): status
                               for channel, status in keep.items()}, now=ctx.now())
        audit.record(conn, actor, "customer.erase", f"customer {customer_id}",
                     {"suppressed": sorted(keep), "withdrawn_messages": withdrawn})
    return {"id": customer_id, "erased": True, "suppressed": sorted(keep)}


# -- reading ------------------------------------------------------------------------------


def get_customer(ctx: Context, customer_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        data = customer_json(_row(conn, customer_id))
        data["messages"] = [
            {"id": m["id"], "mailing_id": m["mailing_id"], "mailing_name": m["mailing_name"],
             "status": m["status"], "sent_at": m["sent_at"].isoformat() if m["sent_at"] else None,
             "opened_at": m["opened_at"].isoformat() if m["opened_at"] else None,
             "clicked_at": m["clicked_at"].isoformat() if m["clicked_at"] else None}
            for m in message_store.messages_for_customer(conn, customer_id, limit=50)
        ]
        return data


def find_customers(ctx: Context, *, email: str | None = None, query: str | None = None,
                   limit: int = 50, offset: int = 0) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        if email is not None:
            row = store.find_by_email(conn, email.strip())
            return [customer_json(row)] if row else []
        return [customer_json(r) for r in store.search(conn, query=query, limit=limit, offset=offset)]


def _status_filter(name: str, value: str | None) -> str | None:
    if not value:
        return None
    try:
        return CustomerStatus(value).value
    except ValueError:
        raise InvalidInput(f'"{name}" must be one of subscribed, unsubscribed, bounced, '
                           f"complained; got {value!r}.", field=name) from None


def _segment_where(conn: sa.Connection, segment_id: int, now: datetime) -> sa.ColumnElement[bool]:
    segment = segment_store.get(conn, segment_id)
    if segment is None:
        raise NotFound(f"There is no segment {segment_id}.", code="segment_not_found",
                       manager_message="That segment does not exist (any more).")
    return compile_rules(parse_rules(segment.rules), now=now)


def list_customers(ctx: Context, *, query: str | None = None, email_status: str | None = None,
                   sms_status: str | None = None, segment_id: int | None = None,
                   before: int | None = None, after: int | None = None,
                   limit: int = 50) -> dict[str, Any]:
    """A page of the customer list, newest first, and how many match in all.

    Returns ``{"customers", "total", "next_before", "prev_after"}``: pass
    ``before=next_before`` for the next page, ``after=prev_after`` for the one
    before it (each ``None`` at an end). Keyset paging, so every page costs
    the same at a million customers."""
    limit = max(1, min(limit, MAX_PAGE))
    with ctx.read() as conn:
        where = store.list_clause(
            query=(query or "").strip() or None,
            email_status=_status_filter("email_status", email_status),
            sms_status=_status_filter("sms_status", sms_status),
            segment=_segment_where(conn, segment_id, ctx.now()) if segment_id else None)
        if after is not None:
            rows = store.page(conn, where, after=after, limit=limit + 1)
            more_before, rows = len(rows) > limit, rows[-limit:]
            more_after = True
        else:
            rows = store.page(conn, where, before=before, limit=limit + 1)
            more_after, rows = len(rows) > limit, rows[:limit]
            more_before = before is not None and bool(rows) and store.exists_where(
                conn, sa.and_(where, store.customers.c.id > rows[0]["id"]))
        first_and_only = after is None and before is None and not more_after
        # A first page with room to spare holds them all: no need to count (a rare
        # match of a text search would otherwise scan the table twice).
        total = len(rows) if first_and_only else store.count_where(conn, where)
    return {"customers": [customer_json(r) for r in rows], "total": total,
            "next_before": rows[-1]["id"] if rows and more_after else None,
            "prev_after": rows[0]["id"] if rows and more_before else None}


# -- exports ------------------------------------------------------------------------------

_FORMULA = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> str:
    """A value as an export cell. Text a spreadsheet would run as a formula
    (``=...``, ``@...``, ``+`` or ``-`` not followed by a number) gets a
    leading apostrophe (OWASP's CSV injection advice); phones and negative
    numbers stay as they are, so the file imports back unchanged."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, list | dict):
        return json.dumps(value, ensure_ascii=False)
    text = str(value)
    if text.startswith(_FORMULA) and not _numeric(text):
        return "'" + text
    return text


def _numeric(text: str) -> bool:
    body = text[1:].replace(" ", "").replace(".", "")
    return text[0] in "+-" and body.isdigit()


def export_csv(ctx: Context, *, segment_id: int | None = None) -> Iterator[str]:
    """The customers of a segment (everyone without one) as CSV text, in
    pieces: the header, then :data:`EXPORT_BATCH` customers at a time, each
    batch read on its own (an export of a million never holds one
    transaction open). Columns: :data:`EXPORT_COLUMNS`, then one per
    attribute key found in the segment. The segment is resolved (and checked)
    before the first piece."""
    now = ctx.now()
    with ctx.read() as conn:
        where = _segment_where(conn, segment_id, now) if segment_id else sa.true()
        keys = store.attribute_keys(conn, where)

    def pieces() -> Iterator[str]:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\r\n")
        writer.writerow([*EXPORT_COLUMNS, *keys])
        after = 0
        while True:
            with ctx.read() as conn:
                rows = store.batch(conn, where, after=after, limit=EXPORT_BATCH)
            for row in rows:
                attributes = row["attributes"] or {}
                writer.writerow([_cell(row[c]) for c in EXPORT_COLUMNS]
                                + [_cell(attributes.get(k)) for k in keys])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
            if len(rows) < EXPORT_BATCH:
                return
            after = rows[-1]["id"]

    return pieces()
