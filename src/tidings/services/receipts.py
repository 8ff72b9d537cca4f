"""SMS delivery receipts: from the SMSC and from webhooks, matched to the parts.

Two ways in, one effect:

- :func:`apply_receipt`, the SMPP transport's ``on_receipt`` callback
  (wired by :func:`tidings.services.sending.make_worker`), for ``deliver_sm``
  and ``data_sm`` receipts;
- :func:`apply_webhook`, for ``POST /api/v1/events`` with ``type``
  ``delivered``, ``undelivered``, ``expired`` or ``rejected`` about an SMS.

A receipt names a part by the SMSC's id, in whatever form the SMSC writes it
(hex or decimal, leading zeros: :func:`tidings.domain.sms.message_id_candidates`).
What it changes is in :mod:`tidings.store.sms`: the part's delivery once,
the message's once all its parts are delivered (or once one failed), and the
mailing's counter of that outcome. Then:

- a receipt that names no recorded part yet is kept and applied when the
  part is recorded (receipts often overtake the worker's bookkeeping);
  one that never finds its part is dropped after ``TIDINGS_SMS_RECEIPT_WAIT``;
- a receipt that comes more than ``TIDINGS_SMS_RECEIPT_WAIT`` after its
  message was sent is logged and not counted: the message's delivery stays
  unknown, as the statistics said once the wait was over;
- a receipt that is not final (``ENROUTE``, ``ACCEPTED``, ``UNKNOWN``) is
  noted on its part and decides nothing.

Every matched receipt is appended to ``feedback_events`` (type
``sms_receipt``, ``detail`` saying what it changed).
"""

from __future__ import annotations

import json
import logging
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from tidings.domain.sms import DELIVERY_OF, DeliveryReceipt, ReceiptState
from tidings.services.context import Context
from tidings.store import feedback as feedback_store
from tidings.store import sms as store

log = logging.getLogger("tidings.receipts")

#: What a webhook's ``type`` says about an SMS.
WEBHOOK_STATES = {"delivered": ReceiptState.DELIVERED, "undelivered": ReceiptState.UNDELIVERABLE,
                  "expired": ReceiptState.EXPIRED, "rejected": ReceiptState.REJECTED}


def _wait(ctx: Context) -> timedelta:
    return timedelta(seconds=ctx.settings.sms_receipt_wait)


def _record(conn: sa.Connection, ctx: Context, message_id: int, detail: dict[str, Any]) -> None:
    feedback_store.record_event(conn, type="sms_receipt", message_id=message_id,
                                detail=json.dumps(detail, sort_keys=True), now=ctx.now())


def _apply_to_part(ctx: Context, conn: sa.Connection, part: dict[str, Any], receipt: DeliveryReceipt,
                   source: str) -> dict[str, Any]:
    now = ctx.now()
    detail: dict[str, Any] = {"source": source, "remote_id": receipt.remote_id, "part": part["part"],
                              "state": receipt.state.value, "error": receipt.error}
    sent_at = part["sent_at"]
    if sent_at is not None and now - sent_at > _wait(ctx):
        log.info("receipt %s for message %s came %s after it was sent: not counted", receipt.remote_id,
                 part["message_id"], now - sent_at)
        _record(conn, ctx, part["message_id"], detail | {"applied": False, "late": True})
        return {"matched": True, "applied": False, "message_id": part["message_id"],
                "mailing_id": part["mailing_id"], "delivery": None}
    decided = store.apply_part_delivery(conn, part, delivery=DELIVERY_OF.get(receipt.state),
                                        state=receipt.state.value, error=receipt.error, now=now)
    _record(conn, ctx, part["message_id"], detail | {"applied": decided is not None,
                                                     "delivery": decided and decided.value})
    return {"matched": True, "applied": decided is not None, "message_id": part["message_id"],
            "mailing_id": part["mailing_id"], "delivery": decided and decided.value}


def apply_receipt(ctx: Context, receipt: DeliveryReceipt, *, source: str = "smpp") -> dict[str, Any]:
    """Apply one receipt (see the module docstring). Returns ``{"matched",
    "applied", "message_id", "mailing_id", "delivery"}``: ``matched`` false when
    no part has its id yet (a final receipt is then kept for later);
    ``delivery`` is the message's outcome when this receipt decided it."""
    with ctx.tx() as conn:
        part = store.find_part(conn, receipt.remote_id)
        if part is not None:
            return _apply_to_part(ctx, conn, part, receipt, source)
        if receipt.state.final:
            store.keep_early_receipt(conn, remote_id=receipt.remote_id, state=receipt.state.value,
                                     error=receipt.error, source=source, now=ctx.now(), keep_for=_wait(ctx))
    log.info("receipt %s (%s) names no part yet; kept for when it is recorded", receipt.remote_id,
             receipt.state.value)
    return {"matched": False, "applied": False, "message_id": None, "mailing_id": None, "delivery": None}


def find_part(ctx: Context, remote_id: str) -> bool:
    """Whether a recorded part has the SMSC id ``remote_id`` (in any of its forms)."""
    with ctx.read() as conn:
        return store.find_part(conn, remote_id) is not None


def apply_to_message(ctx: Context, conn: sa.Connection, message: dict[str, Any], kind: str, *,
                     note: str | None) -> bool:
    """A webhook receipt that names our own message id (an HTTP gateway, which
    knows no parts): the whole message's delivery, once, in ``conn``'s
    transaction. True when it decided the message's delivery."""
    state = WEBHOOK_STATES[kind]
    now = ctx.now()
    detail = {"source": "webhook", "state": state.value, "detail": note}
    sent_at = message["sent_at"]
    if message["status"] not in ("sent", "unknown") or (sent_at is not None and now - sent_at > _wait(ctx)):
        _record(conn, ctx, message["id"], detail | {"applied": False})
        return False
    delivery = DELIVERY_OF[state]
    decided = store.apply_message_delivery(conn, message, delivery, now=now)
    _record(conn, ctx, message["id"], detail | {"applied": decided is not None})
    return decided is not None


def apply_webhook(ctx: Context, kind: str, remote_id: str) -> dict[str, Any]:
    """A webhook receipt that names an SMSC id (a string): applied to its part,
    or kept for later as :func:`apply_receipt` keeps one."""
    outcome = apply_receipt(ctx, DeliveryReceipt(remote_id=remote_id, state=WEBHOOK_STATES[kind]),
                            source="webhook")
    return {"applied": outcome["applied"], "type": kind, "message_id": outcome["message_id"],
            "mailing_id": outcome["mailing_id"], "matched": outcome["matched"]}
