"""Customer rows: upsert by email or external id, lookups."""

from __future__ import annotations

import re
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


# -- one customer: edit, delete ----------------------------------------------------------


def find_by_external_id(conn: sa.Connection, external_id: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(customers).where(customers.c.external_id == external_id)).first()
    return dict(row._mapping) if row else None


def update_fields(conn: sa.Connection, customer_id: int, values: dict[str, Any], *,
                  now: datetime) -> None:
    """Write ``values`` (columns of ``customers``) as given; ``None`` clears."""
    conn.execute(customers.update().where(customers.c.id == customer_id)
                 .values(**values, updated_at=now))


def set_statuses(conn: sa.Connection, ids: Sequence[int], column: str, status: str, *,
                 only_from: str, now: datetime) -> None:
    """``column`` (``email_status`` or ``sms_status``) becomes ``status`` for
    those of ``ids`` whose status is ``only_from``."""
    for start in range(0, len(ids), 900):
        conn.execute(customers.update()
                     .where(customers.c.id.in_(list(ids[start : start + 900])),
                            customers.c[column] == only_from)
                     .values({column: status, "updated_at": now}))


def delete(conn: sa.Connection, customer_id: int) -> bool:
    return conn.execute(customers.delete().where(customers.c.id == customer_id)).rowcount == 1


# -- the customer list: filters, keyset pages, totals ------------------------------------

_WHOLE_ADDRESS = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


def list_clause(*, query: str | None = None, email_status: str | None = None,
                sms_status: str | None = None,
                segment: sa.ColumnElement[bool] | None = None) -> sa.ColumnElement[bool]:
    """The customers a list shows: ``query`` in the email, names or phone (a whole
    address is looked up by its unique index), a status per channel, a segment."""
    where: list[sa.ColumnElement[bool]] = []
    if query:
        text = query.strip().lower()
        if _WHOLE_ADDRESS.fullmatch(text):
            where.append(customers.c.email == text)
        else:
            where.append(sa.or_(
                customers.c.email.contains(text, autoescape=True),
                sa.func.lower(customers.c.first_name).contains(text, autoescape=True),
                sa.func.lower(customers.c.last_name).contains(text, autoescape=True),
                customers.c.phone.contains(text, autoescape=True),
            ))
    if email_status:
        where.append(customers.c.email_status == email_status)
    if sms_status:
        where.append(customers.c.sms_status == sms_status)
    if segment is not None:
        where.append(segment)
    return sa.and_(sa.true(), *where)


def page(conn: sa.Connection, where: sa.ColumnElement[bool], *, limit: int,
         before: int | None = None, after: int | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` customers, newest (highest id) first: those with ids below
    ``before`` (the next page), or the ``limit`` just above ``after`` (the page
    before), or the first page. Keyset paging: the primary key, or the
    (status, id) index when filtered by a status, serves every page alike."""
    stmt = sa.select(customers).where(where)
    if after is not None:
        stmt = stmt.where(customers.c.id > after).order_by(customers.c.id.asc()).limit(limit)
        return [dict(r._mapping) for r in reversed(conn.execute(stmt).all())]
    if before is not None:
        stmt = stmt.where(customers.c.id < before)
    stmt = stmt.order_by(customers.c.id.desc()).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def exists_where(conn: sa.Connection, where: sa.ColumnElement[bool]) -> bool:
    return conn.execute(sa.select(customers.c.id).where(where).limit(1)).first() is not None


def count_where(conn: sa.Connection, where: sa.ColumnElement[bool]) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(customers).where(where))
               .scalar_one())


# -- exports ------------------------------------------------------------------------------


def batch(conn: sa.Connection, where: sa.ColumnElement[bool], *, after: int,
          limit: int) -> list[dict[str, Any]]:
    """The next ``limit`` customers by id above ``after`` (an export walks them all)."""
    stmt = (sa.select(customers).where(where, customers.c.id > after)
            .order_by(customers.c.id).limit(limit))
    return [dict(r._mapping) for r in conn.execute(stmt)]


def attribute_keys(conn: sa.Connection, where: sa.ColumnElement[bool]) -> list[str]:
    """Every attribute key of the customers ``where`` selects, sorted."""
    if conn.dialect.name == "postgresql":
        keys = sa.func.jsonb_object_keys(customers.c.attributes).table_valued("key").render_derived()
        stmt = sa.select(keys.c.key).select_from(customers).join(keys, sa.true()).where(where)
    else:
        each = sa.func.json_each(customers.c.attributes).table_valued("key")
        stmt = sa.select(each.c.key).select_from(customers).join(each, sa.true()).where(where)
    return sorted({str(k) for k in conn.scalars(stmt.distinct())})


def sample_attributes(conn: sa.Connection, *, limit: int) -> list[dict[str, Any]]:
    """The attributes of up to ``limit`` customers, the newest first (what the
    segment builder offers is read from them)."""
    stmt = sa.select(customers.c.attributes).order_by(customers.c.id.desc()).limit(limit)
    return [a for a in conn.scalars(stmt) if a]
