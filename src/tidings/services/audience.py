"""Customers and segments."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.bounds import check_text
from tidings.domain.csvfiles import ErrorList, read_csv
from tidings.domain.customers import CustomerInput, customer_lines, validate_customer
from tidings.domain.segments import parse_rules
from tidings.errors import InvalidInput, NotFound
from tidings.services.context import Context
from tidings.store import customers as store
from tidings.store import packages as message_store
from tidings.store import segments as segment_store
from tidings.store.segments import count_reachable

MAX_BATCH = 10_000


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


def upsert_customer(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    item = validate_customer(data, region=ctx.settings.default_region)
    with ctx.tx() as conn:
        (customer_id,), _ = store.upsert_many(conn, [item], now=ctx.now())
        row = store.get(conn, customer_id)
        assert row is not None
        return customer_json(row)


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
    return ids


#: Customers of a CSV file upserted together: memory stays that of one batch.
IMPORT_BATCH = 5000


def import_csv(ctx: Context, data: bytes, *, encoding: str | None = None,
               delimiter: str | None = None) -> dict[str, Any]:
    """Good lines are kept, bad lines are reported by number: the first
    :data:`~tidings.domain.csvfiles.MAX_ERRORS` of them, and when there are
    more, how many were left out in ``errors_omitted``. The file is read a
    line at a time and upserted in batches of :data:`IMPORT_BATCH`, all in one
    transaction: a file that cannot be read to its end (``BrokenCsv``) imports
    nothing."""
    table = read_csv(data, what="customers", encoding=encoding, delimiter=delimiter)
    errors = ErrorList()
    created = total = 0
    now = ctx.now()
    with ctx.tx() as conn:
        batch: list[CustomerInput] = []
        for line, item in customer_lines(table, region=ctx.settings.default_region):
            if isinstance(item, str):
                errors.add(line, item)
                continue
            batch.append(item)
            if len(batch) >= IMPORT_BATCH:
                created += store.upsert_many(conn, batch, now=now)[1]
                total, batch = total + len(batch), []
        if batch:
            created += store.upsert_many(conn, batch, now=now)[1]
            total += len(batch)
    return {
        "created": created,
        "updated": total - created,
        "errors": [{"line": line, "message": message} for line, message in errors.kept],
    } | ({"errors_omitted": errors.omitted} if errors.omitted else {})


def get_customer(ctx: Context, customer_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        row = store.get(conn, customer_id)
        if row is None:
            raise NotFound(f"There is no customer {customer_id}.", code="customer_not_found")
        data = customer_json(row)
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


def segment_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "rules": row.rules,
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _segment_name(value: Any) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise InvalidInput("A segment needs a name.", field="name")
    return check_text(name, "name", label="name")


def create_segment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    name = _segment_name(data.get("name"))
    rules = data.get("rules", {})
    parse_rules(rules)
    now = ctx.now()
    with ctx.tx() as conn:
        segment_id = segment_store.insert(conn, name=name, rules=rules, now=now)
        return segment_json(_segment(conn, segment_id))


def update_segment(ctx: Context, segment_id: int, data: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    if "name" in data:
        values["name"] = _segment_name(data["name"])
    if "rules" in data:
        parse_rules(data["rules"])
        values["rules"] = data["rules"]
    with ctx.tx() as conn:
        _segment(conn, segment_id)
        segment_store.update(conn, segment_id, values, now=ctx.now())
        return segment_json(_segment(conn, segment_id))


def _segment(conn: sa.Connection, segment_id: int) -> Any:
    row = segment_store.get(conn, segment_id)
    if row is None:
        raise NotFound(f"There is no segment {segment_id}.", code="segment_not_found")
    return row


def get_segment(ctx: Context, segment_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return segment_json(_segment(conn, segment_id))


def list_segments(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [segment_json(r) for r in segment_store.list_rows(conn)]


def count_segment(ctx: Context, segment_id: int) -> dict[str, int]:
    with ctx.read() as conn:
        return count_reachable(conn, parse_rules(_segment(conn, segment_id).rules))


def count_rules(ctx: Context, rules: Any) -> dict[str, int]:
    """The live count of a rule tree that is not saved yet (the UI's builder)."""
    parsed = parse_rules(rules)
    with ctx.read() as conn:
        return count_reachable(conn, parsed)
