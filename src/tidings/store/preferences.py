"""SQL of a customer's own choices: their statuses per channel, and undoing an
unsubscribe recorded on a message (see :mod:`tidings.domain.preferences`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customers, mailings, messages


def contacts(conn: sa.Connection, customer_id: int) -> dict[str, Any] | None:
    """``{"email", "phone", "email_status", "sms_status"}`` of the customer, or None."""
    row = conn.execute(sa.select(customers.c.email, customers.c.phone, customers.c.email_status,
                                 customers.c.sms_status).where(customers.c.id == customer_id)).first()
    return dict(row._mapping) if row else None


def set_status(conn: sa.Connection, customer_id: int, channel: str, status: str, *,
               only_from: tuple[str, ...], now: datetime) -> bool:
    column = customers.c.email_status if channel == "email" else customers.c.sms_status
    return conn.execute(
        customers.update().where(customers.c.id == customer_id, column.in_(only_from))
        .values({column.name: status, "updated_at": now})
    ).rowcount == 1


def undo_unsubscribe(conn: sa.Connection, message: dict[str, Any]) -> bool:
    """Clear the message's unsubscribe and take it off its mailing's count
    (a compare-and-set: twice counts once). True when it was recorded."""
    changed = conn.execute(
        messages.update().where(messages.c.id == message["id"],
                                messages.c.unsubscribed_at.is_not(None))
        .values(unsubscribed_at=None)
    ).rowcount == 1
    if changed:
        conn.execute(mailings.update().where(mailings.c.id == message["mailing_id"])
                     .values(unsubscribed_count=mailings.c.unsubscribed_count - 1))
    return changed


def sender_name(conn: sa.Connection, mailing_id: int) -> str | None:
    return conn.execute(sa.select(mailings.c.from_name).where(mailings.c.id == mailing_id)
                        ).scalar_one_or_none()
