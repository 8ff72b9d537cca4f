"""SQL of deleting and erasing customers (what each keeps: :mod:`tidings.domain.erasure`),
and the hashed contacts an erasure leaves behind."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime

import sqlalchemy as sa

from tidings.domain.erasure import ERASED_DETAIL
from tidings.domain.messages import MessageStatus
from tidings.store.tables import (
    erased_contacts,
    feedback_events,
    messages,
    orders,
    packages,
    suppressions,
)

msg, pkg = messages, packages
QUEUED = MessageStatus.QUEUED.value


def withdraw_queued(conn: sa.Connection, customer_id: int, *, reason: str) -> int:
    """The customer's queued messages (of any mailing: sending, interrupted,
    canceled) become ``skipped`` with ``reason``, so that no worker waits for a
    customer who is gone, and each package's stored counts stay true: a
    package never claimed counts its ``size`` as queued, a closed or released
    one its ``queued_count``. Returns how many were withdrawn."""
    queued = list(conn.execute(
        sa.select(msg.c.id, msg.c.mailing_id)
        .where(msg.c.customer_id == customer_id, msg.c.status == QUEUED)
    ))
    for message_id, mailing_id in queued:
        package = conn.execute(
            sa.select(pkg.c.id, pkg.c.sent_count)
            .where(pkg.c.mailing_id == mailing_id, pkg.c.first_message_id <= message_id,
                   pkg.c.last_message_id >= message_id)
        ).first()
        changed = conn.execute(
            msg.update().where(msg.c.id == message_id, msg.c.status == QUEUED)
            .values(status=MessageStatus.SKIPPED.value, skip_reason=reason)
        ).rowcount
        if package is None or not changed:
            continue
        if package.sent_count is None:
            conn.execute(pkg.update().where(pkg.c.id == package.id, pkg.c.sent_count.is_(None))
                         .values(size=pkg.c.size - 1))
        else:
            conn.execute(pkg.update().where(pkg.c.id == package.id)
                         .values(queued_count=pkg.c.queued_count - 1))
    return len(queued)


def addresses_used(conn: sa.Connection, customer_id: int) -> set[str]:
    """Every address the customer's messages went to (they may have changed it since)."""
    return {a for a in conn.scalars(
        sa.select(msg.c.address).where(msg.c.customer_id == customer_id).distinct()) if a}


def suppression_reason(conn: sa.Connection, address: str) -> str | None:
    return conn.execute(
        sa.select(suppressions.c.reason).where(suppressions.c.address == address.lower())
    ).scalar_one_or_none()


def pseudonymise(conn: sa.Connection, customer_id: int, pseudonym: int) -> None:
    """Messages and orders move to ``pseudonym``; messages lose address and error
    text; the feedback log's text of those messages is replaced."""
    ids = sa.select(msg.c.id).where(msg.c.customer_id == customer_id).scalar_subquery()
    conn.execute(feedback_events.update().where(feedback_events.c.message_id.in_(ids))
                 .values(detail=ERASED_DETAIL))
    conn.execute(msg.update().where(msg.c.customer_id == customer_id)
                 .values(customer_id=pseudonym, address=None, error=None))
    conn.execute(orders.update().where(orders.c.customer_id == customer_id)
                 .values(customer_id=pseudonym))


def forget_suppressions(conn: sa.Connection, addresses: Iterable[str]) -> None:
    """Remove these addresses from the plain suppression list."""
    listed = [a.lower() for a in addresses]
    if listed:
        conn.execute(suppressions.delete().where(suppressions.c.address.in_(listed)))


def remember(conn: sa.Connection, digests: dict[str, str], *, now: datetime) -> None:
    """Keep ``{digest: status}``; an existing digest takes the new status."""
    for digest, status in digests.items():
        found = conn.execute(
            erased_contacts.update().where(erased_contacts.c.digest == digest).values(status=status)
        ).rowcount
        if not found:
            conn.execute(erased_contacts.insert().values(digest=digest, status=status,
                                                         created_at=now))


def any_remembered(conn: sa.Connection) -> bool:
    return conn.execute(sa.select(erased_contacts.c.digest).limit(1)).first() is not None


def remembered(conn: sa.Connection, digests: Sequence[str]) -> dict[str, str]:
    """``{digest: status}`` for those of ``digests`` that are remembered."""
    found: dict[str, str] = {}
    for start in range(0, len(digests), 900):
        chunk = list(digests[start : start + 900])
        found.update(conn.execute(
            sa.select(erased_contacts.c.digest, erased_contacts.c.status)
            .where(erased_contacts.c.digest.in_(chunk))
        ).tuples().all())
    return found


def forget(conn: sa.Connection, digests: Sequence[str]) -> None:
    """Lift remembered statuses (a manager subscribed the customer again)."""
    if digests:
        conn.execute(erased_contacts.delete().where(erased_contacts.c.digest.in_(list(digests))))

