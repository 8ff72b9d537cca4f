"""Lookups not yet given a module of their own (moved as their nouns get one)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customers, domains


def domain_verified(conn: sa.Connection, domain: str) -> bool | None:
    """True or False for a sending domain that is set up, None for one that is not."""
    return conn.execute(
        sa.select(domains.c.verified).where(domains.c.domain == domain)
    ).scalar_one_or_none()


def customer_row(conn: sa.Connection, customer_id: int) -> sa.Row[Any] | None:
    return conn.execute(sa.select(customers).where(customers.c.id == customer_id)).first()


def has_customers(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(customers.c.id).limit(1)).first() is not None
