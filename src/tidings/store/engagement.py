"""SQL for engagement and conversion: first opens and clicks, unsubscribes,
orders and their attribution, the counters statistics are read from.

Every ``mark_*`` function is a compare-and-set on the message row (``... WHERE
opened_at IS NULL``) followed, only when it changed the row, by ``+ 1`` on the
mailing's running counter, in the caller's transaction. Two concurrent hits
on one message therefore count once on every database: PostgreSQL re-checks
the condition after the row lock, SQLite serialises writers.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tidings.domain.engagement import LONGEST_WINDOW, Reach
from tidings.store.tables import customers, mailings, messages, orders

m, msg, cust = mailings, messages, customers

#: Message statuses a recipient can have engaged with: accepted by the server,
#: in flight (the reply may not be recorded yet), or lost with a dead worker.
HANDED_OVER = ("sent", "sending", "unknown")


# -- tracking -----------------------------------------------------------------------


def tracked_message(conn: sa.Connection, message_id: int) -> dict[str, Any] | None:
    """The message with what tracking needs of its mailing (``channel``,
    ``conversion``), or None when there is no such message (any more)."""
    row = conn.execute(
        sa.select(msg.c.id, msg.c.mailing_id, msg.c.customer_id, msg.c.status, msg.c.opened_at,
                  msg.c.clicked_at, msg.c.unsubscribed_at, m.c.channel, m.c.conversion)
        .join(m, m.c.id == msg.c.mailing_id)
        .where(msg.c.id == message_id)
    ).first()
    return dict(row._mapping) if row else None


def _first(conn: sa.Connection, message: dict[str, Any], column: str, counter: str,
           now: datetime) -> bool:
    changed = conn.execute(
        msg.update()
        .where(msg.c.id == message["id"], msg.c[column].is_(None),
               msg.c.status.in_(HANDED_OVER))
        .values({column: now})
    ).rowcount == 1
    if changed:
        conn.execute(m.update().where(m.c.id == message["mailing_id"])
                     .values({counter: m.c[counter] + 1}))
    return changed


def mark_opened(conn: sa.Connection, message: dict[str, Any], *, now: datetime) -> bool:
    """Record the first open; True when this was it (and ``opened_count`` grew)."""
    return _first(conn, message, "opened_at", "opened_count", now)


def mark_clicked(conn: sa.Connection, message: dict[str, Any], *, now: datetime) -> bool:
    """Record the first click; True when this was it (and ``clicked_count`` grew)."""
    return _first(conn, message, "clicked_at", "clicked_count", now)


def mark_unsubscribed(conn: sa.Connection, message: dict[str, Any], *, now: datetime) -> bool:
    """Record the unsubscribe on the message (once, counted on the mailing) and
    make the customer ``unsubscribed`` on the mailing's channel. A complaint
    stays a complaint (it keeps them from mail too, and says more); a bounce
    gives way, since the person evidently got the message. True when the
    message was not unsubscribed from before."""
    status = cust.c.email_status if message["channel"] == "email" else cust.c.sms_status
    conn.execute(
        cust.update()
        .where(cust.c.id == message["customer_id"], status.in_(("subscribed", "bounced")))
        .values({status.name: "unsubscribed", "updated_at": now})
    )
    changed = conn.execute(
        msg.update().where(msg.c.id == message["id"], msg.c.unsubscribed_at.is_(None))
        .values(unsubscribed_at=now)
    ).rowcount == 1
    if changed:
        conn.execute(m.update().where(m.c.id == message["mailing_id"])
                     .values(unsubscribed_count=m.c.unsubscribed_count + 1))
    return changed


def channel_status(conn: sa.Connection, customer_id: int, channel: str) -> str | None:
    """The customer's status on ``channel`` (``email`` or ``sms``)."""
    column = cust.c.email_status if channel == "email" else cust.c.sms_status
    return conn.execute(sa.select(column).where(cust.c.id == customer_id)).scalar_one_or_none()


# -- orders -------------------------------------------------------------------------


def order_exists(conn: sa.Connection, external_id: str) -> bool:
    return conn.execute(
        sa.select(orders.c.id).where(orders.c.external_id == external_id)
    ).first() is not None


def reaches(conn: sa.Connection, customer_id: int, *, before: datetime) -> list[Reach]:
    """The customer's messages that were sent and did not bounce, sent at most
    :data:`LONGEST_WINDOW` before ``before``, with their mailings' conversion
    settings: the candidates :func:`~tidings.domain.engagement.attribute` chooses from.
    An SMS counts as received only once a receipt confirmed its delivery."""
    rows = conn.execute(
        sa.select(msg.c.id, msg.c.mailing_id, msg.c.sent_at, msg.c.opened_at, msg.c.clicked_at,
                  msg.c.receipt, m.c.channel, m.c.conversion)
        .join(m, m.c.id == msg.c.mailing_id)
        .where(msg.c.customer_id == customer_id, msg.c.status == "sent",
               msg.c.bounce.is_(None), msg.c.sent_at.is_not(None),
               msg.c.sent_at <= before, msg.c.sent_at >= before - LONGEST_WINDOW)
    )
    found = []
    for row in rows:
        conversion = row.conversion or {}
        basis = str(conversion.get("basis", "received"))
        if row.channel == "sms" and basis == "received" and row.receipt != "delivered":
            continue
        found.append(Reach(
            message_id=row.id, mailing_id=row.mailing_id, sent_at=row.sent_at,
            opened_at=row.opened_at, clicked_at=row.clicked_at,
            window_days=int(conversion.get("window_days", 7)),
            basis=basis,
        ))
    return found


def insert_order(conn: sa.Connection, values: dict[str, Any]) -> int:
    """Insert an order row; a repeated ``external_id`` raises ``IntegrityError``."""
    return int(conn.execute(orders.insert().values(**values).returning(orders.c.id)).scalar_one())


def get_order(conn: sa.Connection, order_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(orders).where(orders.c.id == order_id)).first()
    return dict(row._mapping) if row else None


def add_conversion(conn: sa.Connection, mailing_id: int, total: Decimal) -> None:
    """One more attributed order and its total on the mailing's counters."""
    conn.execute(m.update().where(m.c.id == mailing_id)
                 .values(orders_count=m.c.orders_count + 1, revenue=m.c.revenue + total))


def add_customer_order(conn: sa.Connection, customer_id: int, *, total: Decimal,
                       ordered_at: datetime, now: datetime) -> None:
    """The customer's order count, total and latest order time."""
    latest = sa.case(
        (sa.or_(cust.c.last_order_at.is_(None), cust.c.last_order_at < ordered_at), ordered_at),
        else_=cust.c.last_order_at,
    )
    conn.execute(
        cust.update().where(cust.c.id == customer_id)
        .values(orders_count=cust.c.orders_count + 1, orders_total=cust.c.orders_total + total,
                last_order_at=latest, updated_at=now)
    )


# -- statistics ---------------------------------------------------------------------


def counters(conn: sa.Connection, mailing_id: int) -> dict[str, Any]:
    """The mailing's running counters."""
    row = conn.execute(
        sa.select(m.c.delivered_count, m.c.opened_count, m.c.clicked_count,
                  m.c.unsubscribed_count, m.c.complained_count, m.c.hard_bounced_count,
                  m.c.soft_bounced_count, m.c.orders_count, m.c.revenue)
        .where(m.c.id == mailing_id)
    ).one()
    return dict(row._mapping)


def converted_customers(conn: sa.Connection, mailing_ids: Sequence[int]) -> int:
    """How many distinct customers have an order attributed to one of ``mailing_ids``."""
    if not mailing_ids:
        return 0
    return conn.execute(
        sa.select(sa.func.count(sa.distinct(orders.c.customer_id)))
        .where(orders.c.mailing_id.in_(list(mailing_ids)))
    ).scalar_one()
