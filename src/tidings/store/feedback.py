"""What bounces, complaints and delivery notices change: messages, customers, the
suppression list, the mailings' counters, and the log of feedback events.

Every change to a message is a compare-and-set (``UPDATE ... WHERE bounce IS
NULL`` and the like) that reports whether it happened, so the same report
applied twice, or by two processes at once, counts once. Nothing here commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.tables import customers, feedback_events, mailings, messages, suppressions

m, msg, cust = mailings, messages, customers

#: The mailing counters :func:`add_to_mailing` may change.
COUNTERS = frozenset({
    "delivered_count", "hard_bounced_count", "soft_bounced_count", "complained_count",
    "guard_bounced", "guard_complained",
})  # fmt: skip


def message(conn: sa.Connection, message_id: int) -> dict[str, Any] | None:
    """The message row (with its mailing's ``channel``), or None."""
    row = conn.execute(
        sa.select(msg, m.c.channel).join(m, m.c.id == msg.c.mailing_id).where(msg.c.id == message_id)
    ).first()
    return dict(row._mapping) if row else None


def mark_delivered(conn: sa.Connection, message_id: int, *, now: datetime) -> bool:
    """Set ``delivered_at`` once; True if this call set it."""
    return (
        conn.execute(
            msg.update().where(msg.c.id == message_id, msg.c.delivered_at.is_(None)).values(delivered_at=now)
        ).rowcount
        == 1
    )


def clear_soft_bounce(conn: sa.Connection, message_id: int) -> bool:
    """A delivered message was only delayed: its soft bounce goes. True if it had one."""
    return (
        conn.execute(
            msg.update().where(msg.c.id == message_id, msg.c.bounce == "soft").values(bounce=None)
        ).rowcount
        == 1
    )


def mark_hard_bounce(conn: sa.Connection, message_id: int) -> str | None:
    """Make the message's bounce ``hard``; returns what it was before (``"none"`` or
    ``"soft"``), or None when it already was hard (nothing changed)."""
    if (
        conn.execute(
            msg.update().where(msg.c.id == message_id, msg.c.bounce.is_(None)).values(bounce="hard")
        ).rowcount
        == 1
    ):
        return "none"
    if (
        conn.execute(
            msg.update().where(msg.c.id == message_id, msg.c.bounce == "soft").values(bounce="hard")
        ).rowcount
        == 1
    ):
        return "soft"
    return None


def mark_soft_bounce(conn: sa.Connection, message_id: int) -> bool:
    """Mark a soft bounce on a message that has no bounce and no delivery yet; True if done."""
    return (
        conn.execute(
            msg.update()
            .where(msg.c.id == message_id, msg.c.bounce.is_(None), msg.c.delivered_at.is_(None))
            .values(bounce="soft")
        ).rowcount
        == 1
    )


def mark_complained(conn: sa.Connection, message_id: int, *, now: datetime) -> bool:
    """Set ``complained_at`` once; True if this call set it."""
    return (
        conn.execute(
            msg.update()
            .where(msg.c.id == message_id, msg.c.complained_at.is_(None))
            .values(complained_at=now)
        ).rowcount
        == 1
    )


def add_to_mailing(conn: sa.Connection, mailing_id: int, deltas: dict[str, int]) -> None:
    """Add ``deltas`` (counter name -> amount, see :data:`COUNTERS`) to the mailing's counters."""
    values = {name: m.c[name] + amount for name, amount in deltas.items() if amount}
    if set(values) - COUNTERS:
        raise ValueError(f"not a feedback counter: {sorted(set(values) - COUNTERS)}")
    if values:
        conn.execute(m.update().where(m.c.id == mailing_id).values(**values))


def set_customer_status(
    conn: sa.Connection, customer_id: int, status: str, *, only_from: tuple[str, ...], now: datetime
) -> bool:
    """Change the customer's email status if it is one of ``only_from``; True if it changed."""
    return (
        conn.execute(
            cust.update()
            .where(cust.c.id == customer_id, cust.c.email_status.in_(only_from))
            .values(email_status=status, updated_at=now)
        ).rowcount
        == 1
    )


def add_soft_bounce(conn: sa.Connection, customer_id: int, *, now: datetime) -> int:
    """One more soft bounce in the customer's current run; returns the run's length."""
    conn.execute(
        cust.update()
        .where(cust.c.id == customer_id)
        .values(soft_bounces=cust.c.soft_bounces + 1, updated_at=now)
    )
    return int(conn.execute(sa.select(cust.c.soft_bounces).where(cust.c.id == customer_id)).scalar_one())


def reset_soft_bounces(conn: sa.Connection, customer_id: int) -> None:
    """End the customer's run of soft bounces (a message reached them)."""
    conn.execute(
        cust.update().where(cust.c.id == customer_id, cust.c.soft_bounces != 0).values(soft_bounces=0)
    )


def hard_bounce(conn: sa.Connection, customer_id: int, address: str | None, *, now: datetime) -> None:
    """The effects of a hard bounce on the customer, wherever it was learned
    (refused at SMTP time, or reported later): a subscribed customer becomes
    ``bounced``, and the address goes on the suppression list."""
    set_customer_status(conn, customer_id, "bounced", only_from=("subscribed",), now=now)
    if address:
        suppress(conn, address, "bounced", now=now)


def suppress(conn: sa.Connection, address: str, reason: str, *, now: datetime) -> None:
    """Put ``address`` (lowercased) on the suppression list, once.

    A complaint outranks a bounce: an address suppressed for ``bounced`` becomes
    ``complained``; anything else already listed stays as it is. Safe against a
    concurrent insert of the same address.
    """
    insert: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(suppressions)
    stmt = insert.values(address=address.lower(), reason=reason, created_at=now)
    if reason == "complained":
        stmt = stmt.on_conflict_do_update(
            index_elements=[suppressions.c.address],
            set_={"reason": "complained"},
            where=suppressions.c.reason == "bounced",
        )
    else:
        stmt = stmt.on_conflict_do_nothing(index_elements=[suppressions.c.address])
    conn.execute(stmt)


def record_event(
    conn: sa.Connection, *, type: str, message_id: int | None, detail: str, now: datetime
) -> None:
    """Append one report to the feedback log."""
    conn.execute(
        feedback_events.insert().values(type=type, message_id=message_id, detail=detail, created_at=now)
    )
