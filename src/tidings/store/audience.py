"""Who a mailing goes to: its audience frozen into message rows, and packages.

A first step goes to its segment; a later chain step to the recipients the
step before it delivered to (sent and not bounced) who match its condition
(:data:`~tidings.domain.mailings.CONDITIONS`). Customers without an address
for the channel, not subscribed on it, or on the suppression list are
recorded as ``skipped`` with the reason, so progress accounts for everyone.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.customers import CustomerStatus
from tidings.domain.mailings import Channel, Mailing
from tidings.domain.messages import MessageStatus, PackageStatus, Recipient
from tidings.domain.segments import parse_rules
from tidings.store.segments import compile_rules
from tidings.store.sms import is_e164
from tidings.store.tables import customers, mailings, messages, orders, packages, segments, suppressions

m, msg, pkg, cust = mailings, messages, packages, customers
SUBSCRIBED = CustomerStatus.SUBSCRIBED.value

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


def audience_where(conn: sa.Connection, mailing: Mailing) -> sa.ColumnElement[bool]:
    """Which customers a mailing goes to: its segment for a first step; for a
    later step, the previous step's delivered recipients matching its condition."""
    if not mailing.is_later_step:
        rules = conn.execute(
            sa.select(segments.c.rules).where(segments.c.id == mailing.segment_id)
        ).scalar_one()
        return compile_rules(parse_rules(rules))
    previous = conn.execute(
        sa.select(m.c.id).where(m.c.chain_id == mailing.chain_id, m.c.step == mailing.step - 1)
    ).scalar_one()
    recipients = sa.select(messages.c.customer_id).where(
        messages.c.mailing_id == previous,
        messages.c.status == MessageStatus.SENT.value,
        messages.c.bounce.is_(None),
        _CONDITIONS[mailing.condition or "all"](),
    )
    return customers.c.id.in_(recipients)


def _freeze(
    conn: sa.Connection, *, mailing_id: int, channel: Channel, where: sa.ColumnElement[bool]
) -> None:
    """Create one message row per matching customer in one ``INSERT ... SELECT``.

    Customers without an address for the channel, not subscribed on it, or on the
    suppression list are recorded as ``skipped`` with the reason. A phone that
    several receivable customers share gets one SMS: the first of them (by id)
    gets it, the others are skipped as ``duplicate_phone``.
    """
    address: sa.ColumnElement[Any] = cust.c.email if channel is Channel.EMAIL else cust.c.phone
    status = cust.c.email_status if channel is Channel.EMAIL else cust.c.sms_status
    source: sa.FromClause = cust
    suppressed: sa.ColumnElement[Any] = sa.null()
    invalid: sa.ColumnElement[bool] = sa.false()
    if channel is Channel.EMAIL:
        source = cust.outerjoin(suppressions, suppressions.c.address == cust.c.email)
        suppressed = suppressions.c.reason
    else:
        invalid = ~is_e164(cust.c.phone)
    reason = sa.case(
        (address.is_(None), "no_address"),
        (invalid, "invalid_phone"),
        (status != SUBSCRIBED, status),
        (suppressed.is_not(None), suppressed),
        else_=sa.null(),
    )
    if channel is Channel.SMS:
        first = sa.func.row_number().over(partition_by=(cust.c.phone, reason.is_(None)), order_by=cust.c.id)
        inner = (sa.select(cust.c.id.label("cid"), address.label("address"), reason.label("reason"),
                           first.label("rn"))
                 .select_from(source).where(where).subquery())
        reason = sa.case((sa.and_(inner.c.reason.is_(None), inner.c.rn > 1), "duplicate_phone"),
                         else_=inner.c.reason)
        who, address, where, source = inner.c.cid, inner.c.address, sa.true(), inner
    else:
        who = cust.c.id
    state = sa.case((reason.is_(None), MessageStatus.QUEUED.value), else_=MessageStatus.SKIPPED.value)
    select = (
        sa.select(sa.literal(mailing_id, sa.BigInteger), who, address, state, reason)
        .select_from(source)
        .where(where)
        .order_by(who)
    )
    conn.execute(
        msg.insert().from_select(
            ["mailing_id", "customer_id", "address", "status", "skip_reason"], select
        )
    )


def _count_receivable(conn: sa.Connection, *, channel: Channel, where: sa.ColumnElement[bool]) -> int:
    """How many customers matching ``where`` :func:`freeze_audience` would queue
    (not skip) on ``channel`` now."""
    address = cust.c.email if channel is Channel.EMAIL else cust.c.phone
    status = cust.c.email_status if channel is Channel.EMAIL else cust.c.sms_status
    counted = sa.func.count() if channel is Channel.EMAIL else sa.func.count(sa.distinct(cust.c.phone))
    stmt = sa.select(counted).select_from(cust).where(
        where, address.is_not(None), status == SUBSCRIBED)
    if channel is Channel.EMAIL:
        stmt = stmt.where(~sa.exists().where(suppressions.c.address == cust.c.email))
    else:
        stmt = stmt.where(is_e164(cust.c.phone))
    return int(conn.execute(stmt).scalar_one())


def _make_packages(conn: sa.Connection, *, mailing_id: int, size: int, first_seq: int = 1) -> int:
    """Cut the queued messages of a mailing into packages of ``size``, by id."""
    rn = sa.func.row_number().over(order_by=msg.c.id).label("rn")
    queued = (
        sa.select(msg.c.id, rn)
        .where(msg.c.mailing_id == mailing_id, msg.c.status == MessageStatus.QUEUED.value)
        .subquery()
    )
    firsts = list(
        conn.execute(
            sa.select(queued.c.id, queued.c.rn).where((queued.c.rn - 1) % size == 0).order_by(queued.c.id)
        )
    )
    if not firsts:
        return 0
    stats = conn.execute(
        sa.select(sa.func.max(msg.c.id), sa.func.count()).where(
            msg.c.mailing_id == mailing_id, msg.c.status == MessageStatus.QUEUED.value
        )
    ).one()
    last_id, total = stats
    rows = []
    for i, (first_id, row_number) in enumerate(firsts):
        end = firsts[i + 1][0] - 1 if i + 1 < len(firsts) else last_id
        count = min(size, total - (row_number - 1))
        rows.append(
            {"mailing_id": mailing_id, "seq": first_seq + i, "first_message_id": first_id,
             "last_message_id": end, "size": count, "status": PackageStatus.PENDING.value, "reserved": 0}
        )
    conn.execute(pkg.insert(), rows)
    return len(rows)




def freeze(conn: sa.Connection, mailing: Mailing, *, package_size: int) -> int:
    """One message row per recipient (``INSERT ... SELECT``), then packages of
    ``package_size``; returns how many packages (0: nobody can receive it)."""
    _freeze(conn, mailing_id=mailing.id, channel=mailing.channel, where=audience_where(conn, mailing))
    return _make_packages(conn, mailing_id=mailing.id, size=package_size)


def count_receivable(conn: sa.Connection, mailing: Mailing) -> int:
    """How many customers a first step would send to if it started now."""
    return _count_receivable(conn, channel=mailing.channel, where=audience_where(conn, mailing))


def receivable_sample(conn: sa.Connection, mailing: Mailing, *, limit: int,
                      shuffled: bool) -> list[Recipient]:
    """Up to ``limit`` customers a first step would send SMS to now, as
    recipients (by id, or in random order with ``shuffled``), for estimating
    the parts of a whole audience; a phone two customers share may appear twice."""
    stmt = (sa.select(cust.c.id, cust.c.external_id, cust.c.email, cust.c.phone, cust.c.first_name,
                      cust.c.last_name, cust.c.attributes)
            .where(audience_where(conn, mailing), cust.c.phone.is_not(None), is_e164(cust.c.phone),
                   cust.c.sms_status == SUBSCRIBED)
            .order_by(sa.func.random() if shuffled else cust.c.id).limit(limit))
    return [Recipient(id=0, customer_id=r.id, address=r.phone, external_id=r.external_id, email=r.email,
                      phone=r.phone, first_name=r.first_name, last_name=r.last_name,
                      attributes=r.attributes or {}) for r in conn.execute(stmt)]
