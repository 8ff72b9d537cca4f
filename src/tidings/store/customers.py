"""Customer rows: upsert by email or external id, lookups."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customers

ANALYZE_AFTER = 5000  # new rows in one batch that make PostgreSQL refresh its statistics
FIELDS = ("external_id", "email", "phone", "first_name", "last_name", "email_status", "sms_status")


def upsert_many(conn: sa.Connection, items: Sequence[Any], *, now: datetime) -> tuple[list[int], int]:
    """Insert or update customers (``CustomerInput``-like objects) matched by
    ``external_id`` first, then ``email``. Given fields overwrite, attributes merge.

    Returns the ids in input order and how many rows were created. A later item
    with the same key as an earlier one updates the same customer. Lookups,
    inserts and updates each go to the database in batches.
    """
    emails = list({i.email for i in items if i.email})
    ext_ids = list({i.external_id for i in items if i.external_id})
    by_email: dict[str, dict[str, Any]] = {}
    by_ext: dict[str, dict[str, Any]] = {}
    cols = [customers.c.id, customers.c.attributes, *(customers.c[f] for f in FIELDS)]
    for key, keys, index in (("email", emails, by_email), ("external_id", ext_ids, by_ext)):
        for start in range(0, len(keys), 900):
            chunk = keys[start : start + 900]
            for found in conn.execute(sa.select(*cols).where(customers.c[key].in_(chunk))):
                index[found._mapping[key]] = dict(found._mapping)
    rows: list[dict[str, Any]] = []  # one per input item, shared when keys repeat
    new: list[dict[str, Any]] = []
    changed: dict[int, dict[str, Any]] = {}
    for item in items:
        row: dict[str, Any] | None = (by_ext.get(item.external_id) if item.external_id else None) or (
            by_email.get(item.email) if item.email else None
        )
        values: dict[str, Any] = {f: getattr(item, f) for f in FIELDS if getattr(item, f) is not None}
        if row is None:
            row = {f: None for f in FIELDS} | {"email_status": "subscribed", "sms_status": "subscribed"}
            row |= values | {"id": None, "attributes": dict(item.attributes)}
            new.append(row)
        else:
            row.update(values, attributes={**(row["attributes"] or {}), **item.attributes})
            if row["id"] is not None:
                changed[row["id"]] = row
        if row.get("email"):
            by_email[row["email"]] = row
        if row.get("external_id"):
            by_ext[row["external_id"]] = row
        rows.append(row)
    if new and conn.dialect.name == "postgresql":
        _copy_new(conn, new, now=now)
    elif new:
        inserted = conn.execute(
            customers.insert().returning(customers.c.id, sort_by_parameter_order=True),
            [{f: r[f] for f in FIELDS} | {"attributes": r["attributes"], "created_at": now,
                                          "updated_at": now} for r in new],
        ).scalars().all()
        for row, new_id in zip(new, inserted, strict=True):
            row["id"] = new_id
    if changed:
        conn.execute(
            customers.update()
            .where(customers.c.id == sa.bindparam("b_id"))
            .values({f: sa.bindparam(f"b_{f}") for f in (*FIELDS, "attributes")} | {"updated_at": now}),
            [{"b_id": cid} | {f"b_{f}": r[f] for f in (*FIELDS, "attributes")} for cid, r in changed.items()],
        )
    if len(new) >= ANALYZE_AFTER and conn.dialect.name == "postgresql":
        # A table that grew fast still has the statistics of a small one, and the
        # planner then scans it for every key lookup of the next batch (seen: 16 s
        # for one batch at 500,000 customers). Sampling takes a fraction of a second.
        conn.exec_driver_sql("ANALYZE customers")
    return [r["id"] for r in rows], len(new)


def _copy_new(conn: sa.Connection, new: list[dict[str, Any]], *, now: datetime) -> None:
    """PostgreSQL: ids drawn from the table's sequence, then ``COPY`` in the same
    transaction. A multi-row ``INSERT`` of 1,000 rows is a statement too long for
    psycopg to cache, and parsing it again for every batch cost more than half
    of an import."""
    ids = sorted(conn.execute(
        sa.text("SELECT nextval(pg_get_serial_sequence('customers', 'id')) FROM generate_series(1, :n)"),
        {"n": len(new)},
    ).scalars())
    import psycopg
    from psycopg.types.json import Jsonb

    columns = ("id", *FIELDS, "attributes", "created_at", "updated_at")
    statement = f"COPY customers ({', '.join(columns)}) FROM STDIN"
    raw = conn.connection.driver_connection
    assert raw is not None
    try:
        with raw.cursor() as cursor, cursor.copy(statement) as copy:
            for row, new_id in zip(new, ids, strict=True):
                row["id"] = new_id
                copy.write_row((new_id, *(row[f] for f in FIELDS), Jsonb(row["attributes"]), now, now))
    except psycopg.IntegrityError as exc:  # as an INSERT would raise it (a concurrent import)
        raise sa.exc.IntegrityError(statement, None, exc) from exc


def get(conn: sa.Connection, customer_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()
    return dict(row._mapping) if row else None


def find_by_email(conn: sa.Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(customers).where(customers.c.email == email.lower())).first()
    return dict(row._mapping) if row else None


def like_pattern(text: str) -> str:
    """A ``LIKE`` pattern (escape character ``\\``) matching ``text`` anywhere:
    ``%`` and ``_`` in it are literal characters, not wildcards."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def search(conn: sa.Connection, *, query: str | None, limit: int, offset: int) -> list[dict[str, Any]]:
    """Customers whose email, first or last name (ignoring case) or phone holds
    ``query`` as written (``%`` and ``_`` included), by id."""
    stmt = sa.select(customers).order_by(customers.c.id).limit(limit).offset(offset)
    if query:
        like = like_pattern(query.lower())
        stmt = stmt.where(
            sa.or_(
                customers.c.email.like(like, escape="\\"),
                sa.func.lower(customers.c.first_name).like(like, escape="\\"),
                sa.func.lower(customers.c.last_name).like(like, escape="\\"),
                customers.c.phone.like(like, escape="\\"),
            )
        )
    return [dict(r._mapping) for r in conn.execute(stmt)]


def first_matching(conn: sa.Connection, where: sa.ColumnElement[bool]) -> dict[str, Any] | None:
    """The customer with the smallest id among those matching ``where``, or None."""
    row = conn.execute(sa.select(customers).where(where).order_by(customers.c.id).limit(1)).first()
    return dict(row._mapping) if row else None


def count(conn: sa.Connection) -> int:
    return conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()


def mark_bounced(conn: sa.Connection, customer_ids: Sequence[int], *, now: datetime) -> None:
    """Hard bounces: the customers' email status becomes ``bounced``."""
    if customer_ids:
        conn.execute(
            customers.update()
            .where(customers.c.id.in_(list(customer_ids)), customers.c.email_status == "subscribed")
            .values(email_status="bounced", updated_at=now)
        )
