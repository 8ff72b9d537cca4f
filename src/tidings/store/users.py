"""People who sign in to the web UI (argon2 password hashes)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import users


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


