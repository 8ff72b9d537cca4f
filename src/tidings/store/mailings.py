"""Mailing rows: read as :class:`~tidings.domain.mailings.Mailing`, edited, and
moved from status to status only by :func:`write_move` (a compare-and-set on
the status, written by ``tidings.engine.lifecycle``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.mailings import Channel, Mailing, MailingStatus, Move
from tidings.store.tables import mailings, messages, packages

m, msg, pkg = mailings, messages, packages

#: The columns a person edits (never the status: see :func:`write_move`).
EDITABLE = frozenset({"name", "segment_id", "template_id", "from_email", "from_name", "reply_to",
                      "conversion", "delay_hours", "condition", "send_at", "quiet_hours"})

GUARD_RESET = {"guard_sent": 0, "guard_failed": 0, "guard_bounced": 0, "guard_complained": 0}


def from_row(row: Any) -> Mailing:
    """A mailing row (a mapping of its columns) as the domain's record."""
    return Mailing(
        id=row["id"], name=row["name"], channel=Channel(row["channel"]),
        status=MailingStatus(row["status"]), segment_id=row["segment_id"],
        template_id=row["template_id"], from_email=row["from_email"], from_name=row["from_name"],
        reply_to=row["reply_to"], conversion=row["conversion"] or {}, send_at=row["send_at"],
        interrupt_code=row["interrupt_code"], interrupt_message=row["interrupt_message"],
        cancel_requested_at=row["cancel_requested_at"], chain_id=row["chain_id"] or row["id"],
        step=row["step"], delay_hours=row["delay_hours"], condition=row["condition"],
        started_at=row["started_at"], finished_at=row["finished_at"],
        created_at=row["created_at"], updated_at=row["updated_at"], quiet_hours=row["quiet_hours"],
    )


def insert(conn: sa.Connection, values: Mapping[str, Any], *, now: datetime) -> int:
    """A new draft (or step); its ``chain_id`` is its own id unless given."""
    mailing_id: int = conn.execute(
        m.insert().values(**values, status=MailingStatus.DRAFT.value, created_at=now, updated_at=now)
        .returning(m.c.id)
    ).scalar_one()
    if values.get("chain_id") is None:
        conn.execute(m.update().where(m.c.id == mailing_id).values(chain_id=mailing_id))
    return mailing_id


def get(conn: sa.Connection, mailing_id: int, *, lock: bool = False) -> Mailing | None:
    """The mailing; ``lock`` holds its row until the transaction ends (PostgreSQL;
    SQLite's writers are serialised already)."""
    stmt = sa.select(m).where(m.c.id == mailing_id)
    if lock and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return from_row(row._mapping) if row else None


def list_(conn: sa.Connection, *, limit: int, offset: int,
          status: MailingStatus | None = None) -> list[Mailing]:
    stmt = sa.select(m).order_by(m.c.id.desc()).limit(limit).offset(offset)
    if status is not None:
        stmt = stmt.where(m.c.status == status.value)
    return [from_row(r._mapping) for r in conn.execute(stmt)]


def edit(conn: sa.Connection, mailing_id: int, values: Mapping[str, Any], *, now: datetime) -> None:
    """Change the fields a person edits (see :data:`EDITABLE`)."""
    wrong = set(values) - EDITABLE
    assert not wrong, f"not editable: {wrong}"
    conn.execute(m.update().where(m.c.id == mailing_id).values(**values, updated_at=now))


def write_move(conn: sa.Connection, mailing_id: int, move: Move) -> bool:
    """Write ``move`` only if the status is still ``move.source`` (a compare-and-set)."""
    values = {**move.values, "status": move.target.value}
    if move.reset_guard:
        values |= GUARD_RESET
    result = conn.execute(
        m.update().where(m.c.id == mailing_id, m.c.status == move.source.value).values(**values)
    )
    return result.rowcount == 1


def chain(conn: sa.Connection, chain_id: int) -> list[Mailing]:
    stmt = sa.select(m).where(m.c.chain_id == chain_id).order_by(m.c.step)
    return [from_row(r._mapping) for r in conn.execute(stmt)]


def delete(conn: sa.Connection, ids: Sequence[int]) -> None:
    conn.execute(pkg.delete().where(pkg.c.mailing_id.in_(list(ids))))
    conn.execute(msg.delete().where(msg.c.mailing_id.in_(list(ids))))
    conn.execute(m.delete().where(m.c.id.in_(list(ids))))


def has_messages(conn: sa.Connection, mailing_id: int) -> bool:
    first = sa.select(msg.c.id).where(msg.c.mailing_id == mailing_id).limit(1)
    return conn.execute(first).first() is not None


def due_scheduled(conn: sa.Connection, now: datetime) -> list[int]:
    stmt = sa.select(m.c.id).where(m.c.status == MailingStatus.SCHEDULED.value,
                                   m.c.send_at <= now).order_by(m.c.send_at)
    return list(conn.execute(stmt).scalars())


def add_guard_counts(conn: sa.Connection, mailing_id: int, *, sent: int, failed: int) -> None:
    if sent or failed:
        conn.execute(
            m.update()
            .where(m.c.id == mailing_id)
            .values(guard_sent=m.c.guard_sent + sent, guard_failed=m.c.guard_failed + failed)
        )


def guard_counts(conn: sa.Connection, mailing_id: int) -> dict[str, int]:
    """The reputation guard's window: ``sent``, ``failed``, ``bounced``, ``complained``."""
    row = conn.execute(
        sa.select(m.c.guard_sent.label("sent"), m.c.guard_failed.label("failed"),
                  m.c.guard_bounced.label("bounced"), m.c.guard_complained.label("complained"))
        .where(m.c.id == mailing_id)
    ).one()
    return {key: int(value) for key, value in row._mapping.items()}


def reset_guard(conn: sa.Connection, mailing_id: int) -> None:
    conn.execute(m.update().where(m.c.id == mailing_id).values(**GUARD_RESET))
