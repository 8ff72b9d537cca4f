"""Signed-in browser sessions (only a hash of each session's token is stored)."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import sessions, users


def add(conn: sa.Connection, *, token_hash: str, user_id: int, now: datetime,
        expires_at: datetime) -> int:
    key = conn.execute(sessions.insert().values(
        token_hash=token_hash, user_id=user_id, created_at=now, last_seen_at=now,
        expires_at=expires_at)).inserted_primary_key
    assert key is not None
    return int(key[0])


def find(conn: sa.Connection, token_hash: str) -> dict[str, Any] | None:
    """The session with that token hash and its person's current email and role;
    ``None`` when there is no such session (or its person was removed)."""
    stmt = (sa.select(sessions.c.id, sessions.c.user_id, sessions.c.created_at,
                      sessions.c.last_seen_at, sessions.c.expires_at, sessions.c.revoked_at,
                      users.c.email, users.c.role)
            .join(users, users.c.id == sessions.c.user_id)
            .where(sessions.c.token_hash == token_hash))
    row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def touch(conn: sa.Connection, session_id: int, now: datetime) -> None:
    conn.execute(sessions.update().where(sessions.c.id == session_id, sessions.c.revoked_at.is_(None))
                 .values(last_seen_at=now))


def delete(conn: sa.Connection, token_hash: str) -> None:
    conn.execute(sessions.delete().where(sessions.c.token_hash == token_hash))


def revoke_all(conn: sa.Connection, user_id: int, now: datetime) -> int:
    """Revoke every live session of the person; how many there were."""
    return conn.execute(sessions.update()
                        .where(sessions.c.user_id == user_id, sessions.c.revoked_at.is_(None))
                        .values(revoked_at=now)).rowcount


def prune(conn: sa.Connection, *, now: datetime, idle: timedelta) -> None:
    """Forget sessions that can no longer be used: expired, idle too long, or revoked."""
    conn.execute(sessions.delete().where(sa.or_(
        sessions.c.expires_at <= now, sessions.c.last_seen_at <= now - idle,
        sessions.c.revoked_at.is_not(None))))
