"""Sending domains: their rows, the signing key of a From domain, and their recent traffic.

The private key column holds the token of
:func:`tidings.transports.dkim.encrypt_secret`, never the PEM itself.
Nothing here commits: the caller's transaction does.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import domains, mailings, messages

d, m, msg = domains, mailings, messages


def insert(conn: sa.Connection, values: dict[str, Any]) -> int:
    """Insert one domain row; raises :class:`sqlalchemy.exc.IntegrityError` for a duplicate name."""
    key = conn.execute(d.insert().values(**values)).inserted_primary_key
    assert key is not None
    return int(key[0])


def get(conn: sa.Connection, domain_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(d).where(d.c.id == domain_id)).first()
    return dict(row._mapping) if row else None


def find(conn: sa.Connection, name: str) -> dict[str, Any] | None:
    """The row of the domain ``name`` (canonical form), or None."""
    row = conn.execute(sa.select(d).where(d.c.domain == name)).first()
    return dict(row._mapping) if row else None


def list_(conn: sa.Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(d).order_by(d.c.domain))]


def delete(conn: sa.Connection, domain_id: int) -> bool:
    return conn.execute(d.delete().where(d.c.id == domain_id)).rowcount == 1


def record_checks(
    conn: sa.Connection,
    domain_id: int,
    *,
    verified: bool,
    checks: dict[str, Any],
    now: datetime,
) -> None:
    """Store the outcome of a DNS check; ``verified_at`` moves only when the check passed."""
    values: dict[str, Any] = {"verified": verified, "checks": checks, "updated_at": now}
    if verified:
        values["verified_at"] = now
    conn.execute(d.update().where(d.c.id == domain_id).values(**values))


def signing_key(conn: sa.Connection, name: str) -> tuple[str, str] | None:
    """``(selector, encrypted private key)`` of the *verified* domain ``name``, or None."""
    row = conn.execute(
        sa.select(d.c.selector, d.c.dkim_private_key).where(d.c.domain == name, d.c.verified)
    ).first()
    return (row.selector, row.dkim_private_key) if row else None


def _from_domain(name: str) -> sa.ColumnElement[bool]:
    # from_email is stored normalized (lower-case domain); LIKE's '_' wildcard is escaped.
    pattern = "%@" + name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return sa.func.lower(m.c.from_email).like(pattern, escape="\\")


def traffic(conn: sa.Connection, name: str, *, since: datetime) -> dict[str, int]:
    """Totals over the email mailings from ``@name`` started or finished since ``since``
    (or sending now).

    Keys: ``mailings``, ``sent`` (messages the server accepted), ``failed``
    (refused at SMTP time), ``delivered``, ``hard_bounced``, ``soft_bounced``
    and ``complained`` (the mailings' feedback counters).
    """
    recent = sa.and_(
        m.c.channel == "email",
        _from_domain(name),
        sa.or_(m.c.started_at >= since, m.c.finished_at >= since, m.c.status == "sending"),
    )
    totals = conn.execute(
        sa.select(
            sa.func.count().label("mailings"),
            sa.func.coalesce(sa.func.sum(m.c.delivered_count), 0).label("delivered"),
            sa.func.coalesce(sa.func.sum(m.c.hard_bounced_count), 0).label("hard_bounced"),
            sa.func.coalesce(sa.func.sum(m.c.soft_bounced_count), 0).label("soft_bounced"),
            sa.func.coalesce(sa.func.sum(m.c.complained_count), 0).label("complained"),
        ).where(recent)
    ).one()
    ids = sa.select(m.c.id).where(recent).scalar_subquery()
    by_status: dict[str, int] = dict(
        conn.execute(
            sa.select(msg.c.status, sa.func.count())
            .where(msg.c.mailing_id.in_(ids), msg.c.status.in_(("sent", "failed")))
            .group_by(msg.c.status)
        ).all()
    )
    out = {key: int(value) for key, value in totals._mapping.items()}
    out["sent"] = int(by_status.get("sent", 0))
    out["failed"] = int(by_status.get("failed", 0))
    return out
