"""Tokens, people, the stored secret key and quota balances."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import api_tokens, meta, quotas, users


def add_token(conn: sa.Connection, *, name: str, role: str, token_hash: str, now: datetime) -> int:
    key = conn.execute(
        api_tokens.insert().values(name=name, role=role, token_hash=token_hash, created_at=now)
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def token_role(conn: sa.Connection, token_hash: str) -> str | None:
    return conn.execute(
        sa.select(api_tokens.c.role).where(api_tokens.c.token_hash == token_hash)
    ).scalar_one_or_none()


def list_tokens(conn: sa.Connection) -> list[dict[str, Any]]:
    stmt = sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.created_at)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(api_tokens.c.id))]


def delete_token(conn: sa.Connection, token_id: int) -> bool:
    """Delete the token; False when there is none with that id."""
    return conn.execute(api_tokens.delete().where(api_tokens.c.id == token_id)).rowcount > 0


def list_users(conn: sa.Connection) -> list[dict[str, Any]]:
    stmt = sa.select(users.c.id, users.c.email, users.c.role, users.c.created_at)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(users.c.id))]


def add_user(conn: sa.Connection, *, email: str, password_hash: str, role: str, now: datetime) -> int:
    key = conn.execute(
        users.insert().values(email=email, password_hash=password_hash, role=role, created_at=now)
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def find_user(conn: sa.Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(users).where(users.c.email == email.lower())).first()
    return dict(row._mapping) if row else None


def get_meta(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def put_meta_once(conn: sa.Connection, key: str, value: str) -> str:
    """Store ``value`` unless the key exists; return what is stored."""
    current = get_meta(conn, key)
    if current is not None:
        return current
    conn.execute(meta.insert().values(key=key, value=value))
    return value


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
