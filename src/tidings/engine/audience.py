"""Freezing a mailing's audience into message rows and cutting packages."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.segments import parse_rules
from tidings.store import mailings as store
from tidings.store.segments import compile_rules
from tidings.store.tables import customers, messages, orders, segments

_CONDITIONS = {
    "all": lambda: sa.true(),
    "opened": lambda: messages.c.opened_at.is_not(None),
    "not_opened": lambda: messages.c.opened_at.is_(None),
    "clicked": lambda: messages.c.clicked_at.is_not(None),
    "not_clicked": lambda: messages.c.clicked_at.is_(None),
    # Converted: the customer ordered after the previous step's message was sent,
    # whichever mailing the order was credited to (a later, unrelated mailing may
    # have taken the credit; the customer has bought all the same).
    "not_converted": lambda: ~sa.exists().where(
        orders.c.customer_id == messages.c.customer_id, orders.c.ordered_at >= messages.c.sent_at
    ),
}


def audience_where(conn: sa.Connection, mailing: dict[str, Any]) -> sa.ColumnElement[bool]:
    """Which customers a mailing goes to: its segment for a first step; for a
    later step, the previous step's delivered recipients matching its condition."""
    if mailing["step"] == 1:
        rules = conn.execute(
            sa.select(segments.c.rules).where(segments.c.id == mailing["segment_id"])
        ).scalar_one()
        return compile_rules(parse_rules(rules))
    previous = conn.execute(
        sa.select(store.m.c.id).where(
            store.m.c.chain_id == mailing["chain_id"], store.m.c.step == mailing["step"] - 1
        )
    ).scalar_one()
    recipients = sa.select(messages.c.customer_id).where(
        messages.c.mailing_id == previous,
        messages.c.status == "sent",
        messages.c.bounce.is_(None),
        _CONDITIONS[mailing["condition"] or "all"](),
    )
    return customers.c.id.in_(recipients)


def freeze(conn: sa.Connection, *, mailing: dict[str, Any], package_size: int) -> int:
    """One message row per recipient (``INSERT ... SELECT``), then packages;
    returns how many packages there are (0: nobody can receive it)."""
    store.freeze_audience(
        conn, mailing_id=mailing["id"], channel=mailing["channel"],
        where=audience_where(conn, mailing),
    )
    return store.make_packages(conn, mailing_id=mailing["id"], size=package_size)


def count_receivable(conn: sa.Connection, mailing: dict[str, Any]) -> int:
    """How many customers a first step would send to if it started now."""
    return store.count_receivable(conn, channel=mailing["channel"], where=audience_where(conn, mailing))
