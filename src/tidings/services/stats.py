"""Mailing statistics: the contract's figures, the rates a manager reads, chain totals.

Everything is read from the mailing's running counters and the count of its
message rows by status (an index range), never from a scan of events, so a
mailing of millions of messages answers as fast as one of ten. The figures
and rates are defined in :func:`tidings.domain.engagement.statistics`.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta
from decimal import Decimal
from typing import Any

import sqlalchemy as sa

from tidings.domain.engagement import ZERO, Counts, statistics
from tidings.domain.mailings import Channel, Mailing, MailingStatus
from tidings.errors import NotFound
from tidings.services.context import Context
from tidings.store import engagement as store
from tidings.store import mailings as mailing_store
from tidings.store import packages
from tidings.store import sms as sms_store


def _counts(conn: sa.Connection, mailing_id: int) -> Counts:
    progress = packages.progress(conn, mailing_id)
    c = store.counters(conn, mailing_id)
    return Counts(
        audience=progress.total, sent=progress.sent, failed=progress.failed,
        skipped=progress.skipped, hard_bounced=c["hard_bounced_count"],
        soft_bounced=c["soft_bounced_count"], confirmed_delivered=c["delivered_count"],
        opened=c["opened_count"], clicked=c["clicked_count"],
        unsubscribed=c["unsubscribed_count"], complained=c["complained_count"],
        orders=c["orders_count"], revenue=Decimal(str(c["revenue"] or 0)),
        converted=store.converted_customers(conn, [mailing_id]),
        **_receipts(conn, mailing_id),
    )


def _receipts(conn: sa.Connection, mailing_id: int) -> dict[str, int]:
    found = sms_store.counters(conn, mailing_id)
    return {"undelivered": found["undelivered"], "expired": found["expired"],
            "rejected": found["rejected"]}


def _counted_until(ctx: Context, mailing: Mailing) -> str | None:
    """When receipts stop counting for the last message the mailing sent: the
    receipt wait after it finished (or stopped); None while it is sending."""
    if mailing.status is MailingStatus.SENDING or mailing.started_at is None:
        return None
    stopped = mailing.finished_at or mailing.updated_at or mailing.started_at
    return (stopped + timedelta(seconds=ctx.settings.sms_receipt_wait)).isoformat()


def mailing_stats(ctx: Context, mailing_id: int) -> dict[str, Any]:
    """The statistics of one mailing.

    Returns the contract's ``sent, delivered, failed, bounced, opened,
    clicked, unsubscribed, complained, orders, revenue, conversion_rate``
    plus ``audience``, ``skipped``, ``rates``, ``revenue_per_recipient`` and
    the rest described in :func:`~tidings.domain.engagement.statistics`;
    ``mailing_id``, ``status``, ``chain_id`` and ``step``. When the mailing
    is one step of a chain of several, ``chain`` holds ``{"chain_id",
    "steps": [per-step statistics with "id", "step", "name", "status"],
    "total": statistics of the whole chain}``; else ``chain`` is null.

    Chain totals add up the steps' figures (a customer who got three steps
    counts three messages); the chain's ``conversion_rate`` is the customers
    with an order credited to any step as a share of those the first step
    delivered to, since every later step goes to a part of them.

    For an SMS mailing ``delivered`` counts what receipts confirmed and
    ``undelivered`` what they reported undelivered, expired or rejected;
    ``receipts`` has each, ``none`` (sent without a final receipt) and
    ``counted_until``: receipts after that moment are not counted (null
    while sending), so from then on ``none`` are of unknown delivery.

    Raises ``NotFound`` for an unknown mailing.
    """
    with ctx.read() as conn:
        mailing = mailing_store.get(conn, mailing_id)
        if mailing is None:
            raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
        own = _counts(conn, mailing_id)
        sms = mailing.channel is Channel.SMS
        result = {"mailing_id": mailing_id, "status": mailing.status.value,
                  "chain_id": mailing.chain_id, "step": mailing.step, **statistics(own, sms=sms)}
        if sms:
            result["receipts"]["counted_until"] = _counted_until(ctx, mailing)
        steps = mailing_store.chain(conn, mailing.chain_id)
        if len(steps) < 2:
            result["chain"] = None
            return result
        per_step = []
        total = ZERO
        for step in steps:
            counts = own if step.id == mailing_id else _counts(conn, step.id)
            total = total + counts
            per_step.append({"id": step.id, "step": step.step, "name": step.name,
                             "status": step.status.value, **statistics(counts, sms=sms)})
        converted = store.converted_customers(conn, [s.id for s in steps])
        first_delivered = per_step[0]["delivered"]
        whole = replace(total, converted=converted)
        result["chain"] = {"chain_id": mailing.chain_id, "steps": per_step,
                           "total": statistics(whole, reached=first_delivered, sms=sms)}
        return result
