"""The audit log: who sent, scheduled, canceled, resumed, deleted, erased, topped
up, changed people and roles, made or revoked tokens, and sent tests.

A service that changes something worth recording calls :func:`record` with the
connection of its own transaction, so that the entry is written if and only if
the change is::

    with ctx.tx() as conn:
        ...  # the change
        audit.record(conn, actor, "customer.erase", f"customer {customer_id}",
                     {"customer_id": customer_id})

Admins read it with :func:`entries` (``GET /api/v1/audit``, the Audit log page).
Entries are never edited or deleted by Tidings.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.actors import Actor
from tidings.domain.audit import check_action, describe
from tidings.services.context import Context
from tidings.store import audit as store

MAX_PAGE = 500


def record(conn: sa.Connection, actor: Actor, action: str, subject: str,
           detail: dict[str, Any] | None = None, *, at: datetime | None = None) -> None:
    """Add an entry in the transaction of ``conn``: ``actor`` did ``action`` (a
    ``noun.verb`` code, see :mod:`tidings.domain.audit`) to ``subject`` (a few
    words, e.g. ``mailing 12 “Spring sale”``), with ``detail`` (a small JSON
    object, never a secret), at ``at`` (now by default)."""
    store.add(conn, at=at or datetime.now(UTC), actor=actor.name, actor_role=actor.role,
              action=check_action(action), subject=subject[:400], detail=detail or None)


def entries(ctx: Context, *, actor: Actor, limit: int = 50, before: int | None = None,
            action: str | None = None) -> dict[str, Any]:
    """The newest ``limit`` entries (older than the entry id ``before``, for the
    next page), admins only: ``{"entries": [{"id", "at", "actor", "actor_role",
    "action", "did", "subject", "detail"}], "next_before": id | None}``; ``did``
    is the action in words. Raises ``Forbidden`` for a manager."""
    actor.require_admin()
    limit = max(1, min(limit, MAX_PAGE))
    with ctx.read() as conn:
        rows = store.entries(conn, limit=limit + 1, before=before, action=action)
    page = rows[:limit]
    return {
        "entries": [{"id": r["id"], "at": r["at"].isoformat(), "actor": r["actor"],
                     "actor_role": r["actor_role"], "action": r["action"],
                     "did": describe(r["action"]), "subject": r["subject"],
                     "detail": r["detail"] or {}} for r in page],
        "next_before": page[-1]["id"] if len(rows) > limit else None,
    }

