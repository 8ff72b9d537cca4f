"""Quota balances per channel; a missing row or NULL balance is not enforced."""

from __future__ import annotations

import sqlalchemy as sa

from tidings.store.tables import quotas


def quota_balance(conn: sa.Connection, channel: str, *, for_update: bool = False) -> int | None:
    stmt = sa.select(quotas.c.balance).where(quotas.c.channel == channel)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return conn.execute(stmt).scalar_one_or_none()


def topup(conn: sa.Connection, channel: str, amount: int) -> int:
    exists = conn.execute(sa.select(quotas.c.channel).where(quotas.c.channel == channel)).first()
    if exists is None:
        conn.execute(quotas.insert().values(channel=channel, balance=amount))
    else:
        conn.execute(
            quotas.update()
            .where(quotas.c.channel == channel)
            .values(balance=sa.func.coalesce(quotas.c.balance, 0) + amount)
        )
    return conn.execute(sa.select(quotas.c.balance).where(quotas.c.channel == channel)).scalar_one()


def change_balance(conn: sa.Connection, channel: str, delta: int) -> None:
    """Add ``delta`` (negative to take) to an enforced balance; no-op when not enforced."""
    if delta:
        conn.execute(
            quotas.update()
            .where(quotas.c.channel == channel, quotas.c.balance.is_not(None))
            .values(balance=quotas.c.balance + delta)
        )
