"""SQL for SMS: the parts the SMSC accepted and their receipts, receipts that
came early, the short links' targets, phones as recipients of replies.

Receipts (what :func:`apply_part_delivery` guarantees, in the caller's
transaction):

- a part's first final receipt decides its delivery; a later one for the same
  part changes nothing (an SMSC that repeats itself counts once);
- the message's delivery is :func:`tidings.domain.sms.roll_up` of its parts',
  written once: from then on ``messages.receipt`` is set and the mailing's
  counter of that outcome (``delivered_count``, ``undelivered_count``,
  ``expired_count``, ``rejected_count``) has grown by one; a delivered
  message also gets ``delivered_at``. Only a message that is ``sent`` can be
  delivered (an ``unknown`` one has parts nobody can count);
- a receipt that names no recorded part waits in ``sms_receipts`` and is
  applied by :func:`record_parts` when its part is recorded (receipts often
  come before the worker has written the ``submit_sm`` answers down).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.expression import ColumnElement

from tidings.domain.messages import AcceptedPart
from tidings.domain.sms import (
    DELIVERY_OF,
    Delivery,
    ReceiptState,
    canonical_message_id,
    message_id_candidates,
    receipt_id_forms,
    roll_up,
)
from tidings.store.tables import customers, mailings, message_parts, messages, sms_links, sms_receipts

m, msg, cust, parts = mailings, messages, customers, message_parts

#: The mailing's counter of each message outcome.
COUNTER = {Delivery.DELIVERED: "delivered_count", Delivery.UNDELIVERED: "undelivered_count",
           Delivery.EXPIRED: "expired_count", Delivery.REJECTED: "rejected_count"}


# -- phones in SQL ------------------------------------------------------------------------


class _E164(ColumnElement[bool]):
    """True when the column holds an E.164 number (``+``, 7 to 15 digits, the first
    not 0): :func:`tidings.domain.phones.is_e164` in SQL."""

    inherit_cache = True
    type = sa.Boolean()

    def __init__(self, column: ColumnElement[Any]) -> None:
        self.column = column


@compiles(_E164)
def _e164_default(element: _E164, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return (f"({column} GLOB '+[1-9]*' AND length({column}) BETWEEN 8 AND 16 "
            f"AND substr({column}, 2) NOT GLOB '*[^0-9]*')")


@compiles(_E164, "postgresql")
def _e164_postgresql(element: _E164, compiler: SQLCompiler, **kw: Any) -> str:
    return f"({compiler.process(element.column, **kw)} ~ '^\\+[1-9][0-9]{{6,14}}$')"


def is_e164(column: ColumnElement[Any]) -> ColumnElement[bool]:
    """The SQL form of :func:`tidings.domain.phones.is_e164` on ``column``."""
    return _E164(column)


# -- parts and receipts --------------------------------------------------------------------


def record_parts(conn: sa.Connection, accepted: Sequence[AcceptedPart], *, now: datetime) -> int:
    """Store the accepted parts (canonical ids), then apply the receipts that
    came for them before; returns how many such receipts were applied."""
    if not accepted:
        return 0
    conn.execute(parts.insert(), [
        {"message_id": p.message_id, "part": p.part, "remote_id": canonical_message_id(p.remote_id),
         "created_at": now} for p in accepted])
    forms = {f: p for p in accepted for f in receipt_id_forms(p.remote_id)}
    early = list(conn.execute(sa.select(sms_receipts).where(sms_receipts.c.remote_id.in_(list(forms)))
                              .order_by(sms_receipts.c.id)))
    applied = 0
    for receipt in early:
        part = find_part(conn, receipt.remote_id)
        if part is None:  # the receipt's own candidates name another part first
            continue
        state = ReceiptState(receipt.state)
        apply_part_delivery(conn, part, delivery=DELIVERY_OF.get(state), state=state, error=receipt.error,
                            now=now)
        conn.execute(sms_receipts.delete().where(sms_receipts.c.id == receipt.id))
        applied += 1
    return applied


def find_part(conn: sa.Connection, remote_id: str) -> dict[str, Any] | None:
    """The part a receipt's id names (:func:`~tidings.domain.sms.message_id_candidates`,
    the first candidate that exists; of several parts with one id, the latest),
    with its message's ``status``, ``sent_at``, ``receipt``, ``mailing_id`` and
    ``customer_id``; None when no recorded part has any of its forms."""
    for candidate in message_id_candidates(remote_id):
        row = conn.execute(
            sa.select(parts.c.id, parts.c.message_id, parts.c.part, parts.c.delivery, msg.c.status,
                      msg.c.sent_at, msg.c.receipt, msg.c.mailing_id, msg.c.customer_id)
            .join(msg, msg.c.id == parts.c.message_id)
            .where(parts.c.remote_id == candidate)
            .order_by(parts.c.id.desc()).limit(1)
        ).first()
        if row is not None:
            return dict(row._mapping)
    return None


def apply_part_delivery(conn: sa.Connection, part: dict[str, Any], *, delivery: Delivery | None,
                        state: str, error: str | None, now: datetime) -> Delivery | None:
    """Record one receipt of ``part`` (a :func:`find_part` row); returns the
    message's delivery when this receipt decided it (see the module docstring)."""
    still_open = parts.c.delivery.is_(None)
    conn.execute(parts.update().where(parts.c.id == part["id"], still_open)
                 .values(delivery=delivery.value if delivery else None, state=state[:16],
                         error=(error or None) and error[:64], receipt_at=now))
    if delivery is None:
        return None
    deliveries = [Delivery(d) if d else None for d in conn.execute(
        sa.select(parts.c.delivery).where(parts.c.message_id == part["message_id"])
        .order_by(parts.c.part)).scalars()]
    return _decide(conn, part, roll_up(deliveries), now=now)


def apply_message_delivery(conn: sa.Connection, message: dict[str, Any], delivery: Delivery, *,
                           now: datetime) -> Delivery | None:
    """A receipt for a whole message (a gateway that names our message id, not
    parts); returns the delivery when this decided it."""
    return _decide(conn, message | {"message_id": message["id"]}, delivery, now=now)


def _decide(conn: sa.Connection, message: dict[str, Any], outcome: Delivery | None, *,
            now: datetime) -> Delivery | None:
    if outcome is None or (outcome is Delivery.DELIVERED and message["status"] != "sent"):
        return None
    values: dict[str, Any] = {"receipt": outcome.value, "receipt_at": now}
    if outcome is Delivery.DELIVERED:
        values["delivered_at"] = now
    changed = conn.execute(msg.update().where(msg.c.id == message["message_id"], msg.c.receipt.is_(None))
                           .values(**values)).rowcount == 1
    if not changed:
        return None
    counter = COUNTER[outcome]
    conn.execute(m.update().where(m.c.id == message["mailing_id"]).values({counter: m.c[counter] + 1}))
    return outcome


def keep_early_receipt(conn: sa.Connection, *, remote_id: str, state: str, error: str | None,
                       source: str, now: datetime, keep_for: timedelta) -> None:
    """Keep a receipt no recorded part has (yet); those older than ``keep_for`` go."""
    conn.execute(sms_receipts.delete().where(sms_receipts.c.received_at < now - keep_for))
    conn.execute(sms_receipts.insert().values(remote_id=canonical_message_id(remote_id)[:64],
                                              state=state[:16], error=(error or None) and error[:64],
                                              source=source, received_at=now))


def counters(conn: sa.Connection, mailing_id: int) -> dict[str, int]:
    """The mailing's receipt counters: ``delivered``, ``undelivered``, ``expired``, ``rejected``."""
    row = conn.execute(sa.select(*(m.c[c] for c in COUNTER.values())).where(m.c.id == mailing_id)).one()
    return {d.value: int(row._mapping[c]) for d, c in COUNTER.items()}


# -- short links ----------------------------------------------------------------------------


def link_number(conn: sa.Connection, mailing_id: int, url: str) -> int:
    """The number of ``url`` among the mailing's links, made on first use.
    Concurrent first uses get one number (the unique key decides)."""
    digest = hashlib.sha256(url.encode()).hexdigest()
    where = sa.and_(sms_links.c.mailing_id == mailing_id, sms_links.c.url_hash == digest)
    found = conn.execute(sa.select(sms_links.c.id).where(where)).scalar_one_or_none()
    if found is not None:
        return int(found)
    insert = (postgresql.insert(sms_links) if conn.dialect.name == "postgresql"
              else sqlite.insert(sms_links))
    conn.execute(insert.values(mailing_id=mailing_id, url_hash=digest, url=url).on_conflict_do_nothing())
    return int(conn.execute(sa.select(sms_links.c.id).where(where)).scalar_one())


def link_target(conn: sa.Connection, link: int) -> tuple[int, str] | None:
    """``(mailing_id, url)`` of link number ``link``, or None."""
    row = conn.execute(sa.select(sms_links.c.mailing_id, sms_links.c.url)
                       .where(sms_links.c.id == link)).first()
    return (row.mailing_id, row.url) if row else None


# -- replies --------------------------------------------------------------------------------


def customers_with_phone(conn: sa.Connection, phone: str) -> list[dict[str, Any]]:
    """Every customer with this (E.164) phone: ``id`` and ``sms_status``."""
    rows = conn.execute(sa.select(cust.c.id, cust.c.sms_status).where(cust.c.phone == phone)
                        .order_by(cust.c.id))
    return [dict(r._mapping) for r in rows]


def last_message_to(conn: sa.Connection, phone: str, *, since: datetime) -> dict[str, Any] | None:
    """The latest SMS handed over to ``phone`` since ``since``, as
    ``tidings.store.engagement.tracked_message`` reads a message."""
    row = conn.execute(
        sa.select(msg.c.id, msg.c.mailing_id, msg.c.customer_id, msg.c.status, msg.c.opened_at,
                  msg.c.clicked_at, msg.c.unsubscribed_at, m.c.channel, m.c.conversion)
        .join(m, m.c.id == msg.c.mailing_id)
        .where(msg.c.address == phone, m.c.channel == "sms", msg.c.status.in_(("sent", "unknown")),
               msg.c.sent_at >= since)
        .order_by(msg.c.sent_at.desc(), msg.c.id.desc()).limit(1)
    ).first()
    return dict(row._mapping) if row else None


def set_sms_status(conn: sa.Connection, customer_ids: Sequence[int], status: str, *,
                   only_from: Sequence[str], now: datetime) -> int:
    """``sms_status`` of those customers whose status is in ``only_from``; returns how many."""
    if not customer_ids:
        return 0
    return conn.execute(
        cust.update().where(cust.c.id.in_(list(customer_ids)), cust.c.sms_status.in_(list(only_from)))
        .values(sms_status=status, updated_at=now)
    ).rowcount
