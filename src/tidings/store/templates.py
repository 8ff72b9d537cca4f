"""Template rows."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.templates import Template, with_preheader
from tidings.store.tables import customers, templates


def from_row(row: Any) -> Template:
    """The template as it is sent: its ``html`` with the preheader in place."""
    html = with_preheader(row.html, row.preheader) if row.html else row.html
    return Template(id=row.id, name=row.name, channel=row.channel, subject=row.subject,
                    html=html, text=row.text)


def insert(conn: sa.Connection, values: Mapping[str, Any], *, now: datetime) -> int:
    stmt = templates.insert().values(**values, created_at=now, updated_at=now)
    template_id: int = conn.execute(stmt.returning(templates.c.id)).scalar_one()
    return template_id


def update(conn: sa.Connection, template_id: int, values: Mapping[str, Any], *, now: datetime) -> None:
    conn.execute(templates.update().where(templates.c.id == template_id).values(**values, updated_at=now))


def get_row(conn: sa.Connection, template_id: int) -> sa.Row[Any] | None:
    """The row (with its timestamps), for the API."""
    return conn.execute(sa.select(templates).where(templates.c.id == template_id)).first()


def get(conn: sa.Connection, template_id: int) -> Template | None:
    row = get_row(conn, template_id)
    return from_row(row) if row is not None else None


def list_rows(conn: sa.Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(templates).order_by(templates.c.id)))


def channel_of(conn: sa.Connection, template_id: int) -> str | None:
    channel: str | None = conn.execute(
        sa.select(templates.c.channel).where(templates.c.id == template_id)
    ).scalar_one_or_none()
    return channel


def attribute_keys(conn: sa.Connection, *, limit: int = 200) -> list[str]:
    """The attribute keys customers have, sorted, at most ``limit`` of them (the
    personalisation list and the unknown-variable check read them)."""
    if conn.dialect.name == "postgresql":
        key = sa.func.jsonb_object_keys(customers.c.attributes)
        stmt = sa.select(key).distinct().where(
            sa.func.jsonb_typeof(customers.c.attributes) == "object")
    else:
        each = sa.func.json_each(customers.c.attributes).table_valued("key")
        stmt = sa.select(each.c.key).distinct().select_from(customers).join(each, sa.true()).where(
            sa.func.json_type(customers.c.attributes) == "object")
    found = conn.execute(stmt.order_by(sa.text("1")).limit(limit)).scalars()
    return [str(key) for key in found]
