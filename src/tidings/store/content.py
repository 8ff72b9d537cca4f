"""Segments, templates and the lookups mailings make of them and of domains."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customers, domains, segments, templates


def insert_segment(conn: sa.Connection, *, name: str, rules: Any, now: datetime) -> int:
    stmt = segments.insert().values(name=name, rules=rules, created_at=now, updated_at=now)
    return conn.execute(stmt.returning(segments.c.id)).scalar_one()


def update_segment(conn: sa.Connection, segment_id: int, values: dict[str, Any], *, now: datetime) -> None:
    conn.execute(segments.update().where(segments.c.id == segment_id).values(**values, updated_at=now))


def get_segment(conn: sa.Connection, segment_id: int) -> sa.Row[Any] | None:
    return conn.execute(sa.select(segments).where(segments.c.id == segment_id)).first()


def list_segments(conn: sa.Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(segments).order_by(segments.c.id)))


def insert_template(conn: sa.Connection, values: dict[str, Any], *, now: datetime) -> int:
    stmt = templates.insert().values(**values, created_at=now, updated_at=now)
    return conn.execute(stmt.returning(templates.c.id)).scalar_one()


def update_template(conn: sa.Connection, template_id: int, values: dict[str, Any], *,
                    now: datetime) -> None:
    conn.execute(templates.update().where(templates.c.id == template_id).values(**values, updated_at=now))


def get_template(conn: sa.Connection, template_id: int) -> sa.Row[Any] | None:
    return conn.execute(sa.select(templates).where(templates.c.id == template_id)).first()


def list_templates(conn: sa.Connection) -> list[sa.Row[Any]]:
    return list(conn.execute(sa.select(templates).order_by(templates.c.id)))


def template_channel(conn: sa.Connection, template_id: int) -> str | None:
    return conn.execute(
        sa.select(templates.c.channel).where(templates.c.id == template_id)
    ).scalar_one_or_none()


def domain_verified(conn: sa.Connection, domain: str) -> bool | None:
    """True or False for a sending domain that is set up, None for one that is not."""
    return conn.execute(
        sa.select(domains.c.verified).where(domains.c.domain == domain)
    ).scalar_one_or_none()


def customer_row(conn: sa.Connection, customer_id: int) -> sa.Row[Any] | None:
    return conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()


def has_customers(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(customers.c.id).limit(1)).first() is not None
