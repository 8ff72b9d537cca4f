"""The audit log: who did what, newest first."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import audit_log


def add(conn: sa.Connection, *, at: datetime, actor: str, actor_role: str, action: str,
        subject: str, detail: dict[str, Any] | None) -> None:
    conn.execute(audit_log.insert().values(at=at, actor=actor, actor_role=actor_role, action=action,
                                           subject=subject, detail=detail))


def entries(conn: sa.Connection, *, limit: int, before: int | None = None,
            action: str | None = None, actor: str | None = None) -> list[dict[str, Any]]:
    """Up to ``limit`` entries, newest first, older than the entry ``before`` (keyset)."""
    stmt = sa.select(audit_log).order_by(audit_log.c.id.desc()).limit(limit)
    if before is not None:
        stmt = stmt.where(audit_log.c.id < before)
    if action is not None:
        stmt = stmt.where(audit_log.c.action == action)
    if actor is not None:
        stmt = stmt.where(audit_log.c.actor == actor)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def entries_since(conn: sa.Connection, *, actor: str, actions: tuple[str, ...],
                  since: datetime, limit: int) -> list[datetime]:
    """When ``actor`` did one of ``actions`` since ``since``: the newest ``limit`` times,
    newest first."""
    stmt = (sa.select(audit_log.c.at)
            .where(audit_log.c.actor == actor, audit_log.c.action.in_(actions), audit_log.c.at >= since)
            .order_by(audit_log.c.at.desc()).limit(limit))
    return list(conn.execute(stmt).scalars())
