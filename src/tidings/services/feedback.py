"""Bounces, complaints and delivery notices: what they change, once.

Two ways in, one effect:

- :func:`apply_report` for reports that came back by mail (DSN, ARF, the
  usual mailer-daemon texts) through the inbound listener that
  :func:`start_listener` runs on ``TIDINGS_BOUNCE_LISTEN``;
- :func:`apply_event` for ``POST /api/v1/events`` from provider webhooks.

SMS events are handed on: receipts (``delivered``, ``undelivered``,
``expired``, ``rejected`` about an SMS) to :mod:`tidings.services.receipts`,
replies (``inbound``) to :mod:`tidings.services.replies`.

Effects on the message, its customer and its mailing:

``delivered``
    ``delivered_at`` is set; a soft bounce of the same message is withdrawn
    (it was only delayed); the customer's run of soft bounces ends.
``bounce`` hard
    ``bounce='hard'``; a subscribed customer becomes ``bounced``; the address
    goes on the suppression list.
``bounce`` soft (or of unknown severity)
    ``bounce='soft'`` unless the message already bounced or was delivered; the
    customer's run of soft bounces grows by one, and at
    ``TIDINGS_SOFT_BOUNCE_LIMIT`` (3) in a row a subscribed customer becomes
    ``bounced`` and is suppressed. The run ends only with a delivery notice
    for one of their messages: a message accepted by the receiving server
    proves nothing, since soft bounces come after that.
``complaint``
    ``complained_at`` is set; the customer becomes ``complained`` at once
    (from any other status); the address is suppressed (a complaint
    outranks a bounce there).

The mailing's counters ``delivered_count``, ``hard_bounced_count``,
``soft_bounced_count`` (a message counts in one of the two: soft becomes
hard, a delivery withdraws a soft one) and ``complained_count``, and the
reputation guard's window (``guard_bounced`` for hard bounces of messages not
already refused at SMTP time, ``guard_complained``), move once per message:
a second identical report changes nothing. Every attributed report is
appended to ``feedback_events`` (``detail`` says whether it changed
anything). After a report that changed a mailing still ``sending``, the
guard is checked in the same transaction and may interrupt it with
``reputation``, as the worker does after each group.

Attribution: a report names its message by the signed VERP token of the
envelope sender; only when that is missing or invalid, by our ``Message-ID``
(``<tidings.MAILING.MESSAGE@domain>``), and then only if the report's
recipient is the message's address, because message ids can be guessed and
bounce mail can be forged by anyone. Reports about SMS messages, or messages
never handed to a server (queued, skipped), are ignored.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.mailings import InterruptCode, MailingStatus
from tidings.domain.messages import HANDED_OVER
from tidings.domain.reputation import verdict
from tidings.domain.tracking import verify_message_token
from tidings.engine import lifecycle
from tidings.errors import InvalidInput, NotFound
from tidings.feedback.inbound import BounceListener
from tidings.feedback.reports import FeedbackReport, verp_token
from tidings.services import receipts, replies
from tidings.services.context import Context
from tidings.store import feedback as store
from tidings.store.sending import SqlTransaction

log = logging.getLogger("tidings.feedback")

EVENT_TYPES = ("delivered", "bounce", "complaint", "undelivered", "expired", "rejected", "inbound")
#: Receipt types that only an SMS can have.
SMS_RECEIPTS = ("undelivered", "expired", "rejected")
_OUR_MESSAGE_ID = re.compile(r"^\s*<?tidings\.(\d{1,19})\.(\d{1,19})@[^<>\s@]+>?\s*$", re.IGNORECASE)
_NUMERIC = re.compile(r"^\s*\d{1,19}\s*$")


def parse_message_id_header(value: str) -> tuple[int, int] | None:
    """``(mailing_id, message_id)`` from our ``<tidings.MAILING.MESSAGE@domain>``, else None."""
    found = _OUR_MESSAGE_ID.match(value or "")
    return (int(found.group(1)), int(found.group(2))) if found else None


def _message_from_token(secret: bytes, token: str | None) -> int | None:
    if not token:
        return None
    try:
        return verify_message_token(secret, token, "bounce")
    except (InvalidInput, ValueError):
        return None


def _apply(
    ctx: Context,
    conn: sa.Connection,
    message: dict[str, Any],
    *,
    kind: str,
    hard: bool,
    detail: dict[str, Any],
) -> bool:
    """Apply one attributed report inside ``conn``'s transaction; True if anything changed.

    Rows are locked in the worker's order (the message, its mailing, then the
    customer), so a report and a worker recording a group never deadlock.
    """
    now = ctx.now()
    mid, mailing_id, customer_id = message["id"], message["mailing_id"], message["customer_id"]
    deltas: dict[str, int] = {}
    if kind == "delivered":
        event_type = "delivered"
        if store.mark_delivered(conn, mid, now=now):
            deltas["delivered_count"] = 1
            if store.clear_soft_bounce(conn, mid):
                deltas["soft_bounced_count"] = -1
    elif kind == "complaint":
        event_type = "complaint"
        if store.mark_complained(conn, mid, now=now):
            deltas = {"complained_count": 1, "guard_complained": 1}
    elif hard:
        event_type = "hard_bounce"
        before = store.mark_hard_bounce(conn, mid)
        if before is not None:
            deltas["hard_bounced_count"] = 1
            if before == "soft":
                deltas["soft_bounced_count"] = -1
            if message["status"] != "failed":  # a refusal at SMTP time is in guard_failed already
                deltas["guard_bounced"] = 1
    else:
        event_type = "soft_bounce"
        if store.mark_soft_bounce(conn, mid):
            deltas["soft_bounced_count"] = 1
    changed = bool(deltas)
    store.add_to_mailing(conn, mailing_id, deltas)
    if changed:
        _apply_to_customer(ctx, conn, customer_id, message["address"], event_type, now=now)
    store.record_event(
        conn,
        type=event_type,
        message_id=mid,
        detail=json.dumps({**detail, "applied": changed}, sort_keys=True),
        now=now,
    )
    if changed:
        _guard(ctx, conn, mailing_id)
    return changed


def _apply_to_customer(
    ctx: Context,
    conn: sa.Connection,
    customer_id: int,
    address: str | None,
    event_type: str,
    *,
    now: datetime,
) -> None:
    """The customer's side of a report that changed its message (see the module docstring)."""
    suppress_as: str | None = None
    if event_type == "delivered":
        store.reset_soft_bounces(conn, customer_id)
    elif event_type == "complaint":
        store.set_customer_status(
            conn, customer_id, "complained", only_from=("subscribed", "unsubscribed", "bounced"), now=now
        )
        suppress_as = "complained"
    elif event_type == "hard_bounce":
        store.hard_bounce(conn, customer_id, address, now=now)
    elif store.add_soft_bounce(conn, customer_id, now=now) >= ctx.settings.soft_bounce_limit:
        store.set_customer_status(conn, customer_id, "bounced", only_from=("subscribed",), now=now)
        suppress_as = "bounced"
    if suppress_as is not None and address:
        store.suppress(conn, address, suppress_as, now=now)


def _guard(ctx: Context, conn: sa.Connection, mailing_id: int) -> None:
    """Interrupt a sending mailing whose bounces or complaints passed their limits."""
    tx = SqlTransaction(conn)
    mailing = tx.mailing(mailing_id)
    if mailing is None or mailing.status is not MailingStatus.SENDING:
        return
    why = verdict(tx.guard_counts(mailing_id), ctx.settings.reputation_limits)
    if why is not None:
        lifecycle.interrupt(tx, mailing_id, InterruptCode.REPUTATION, why, now=ctx.now())


def _usable(message: dict[str, Any] | None, what: str) -> bool:
    if message is None:
        log.info("ignoring a report for %s: no such message", what)
        return False
    if message["channel"] != "email" or message["status"] not in HANDED_OVER:
        log.info(
            "ignoring a report for message %s, which is %s %s",
            message["id"],
            message["status"],
            message["channel"],
        )
        return False
    return True


def apply_report(ctx: Context, report: FeedbackReport | None) -> bool:
    """Apply a report read from inbound mail; True if it changed anything.

    ``None`` (junk: auto-replies, unparseable mail) is logged and dropped, as
    is a report that cannot be attributed to one of our email messages (see
    the module docstring). A bounce whose severity is unknown counts as soft.
    Raises only for database trouble (the listener logs and drops the report).
    """
    if report is None:
        log.info("dropped an inbound message that is not a report")
        return False
    secret = ctx.secret  # read outside the transaction (see Context.secret)
    mid = _message_from_token(secret, report.verp_token)
    by_header: tuple[int, int] | None = None
    if mid is None and report.original_message_id:
        by_header = parse_message_id_header(report.original_message_id)
    if mid is None and by_header is None:
        log.info(
            "dropped a %s report for %r: it names none of our messages (token %r, Message-ID %r)",
            report.kind,
            report.recipient,
            report.verp_token,
            report.original_message_id,
        )
        return False
    detail = {
        "source": "mail",
        "recipient": report.recipient,
        "status": report.status,
        "diagnostic": report.diagnostic,
        "hard": report.hard,
    }
    with ctx.tx() as conn:
        if mid is not None:
            message = store.message(conn, mid)
            if not _usable(message, f"VERP token {report.verp_token}"):
                return False
        else:
            assert by_header is not None
            message = store.message(conn, by_header[1])
            if not _usable(message, f"Message-ID {report.original_message_id}"):
                return False
            assert message is not None
            recipient = (report.recipient or "").strip().lower()
            if (
                message["mailing_id"] != by_header[0]
                or not recipient
                or recipient != (message["address"] or "").lower()
            ):
                log.info(
                    "dropped a %s report naming Message-ID %s for %r: without a valid VERP "
                    "token the recipient must be the message's own",
                    report.kind,
                    report.original_message_id,
                    report.recipient,
                )
                return False
        assert message is not None
        return _apply(ctx, conn, message, kind=report.kind, hard=report.hard is True, detail=detail)


def _resolve_event_message(secret: bytes, value: Any) -> tuple[int, int | None]:
    """``(message id, mailing id it must belong to or None)`` for an event's ``message_id``."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise InvalidInput(
            "message_id must be our message id (a number) or the message's Message-ID header.",
            field="message_id",
        )
    if isinstance(value, str) and _NUMERIC.match(value):
        value = int(value)
    if isinstance(value, int):
        if not 0 < value < 2**63:
            raise NotFound(f"There is no message {value}.", code="message_not_found")
        return value, None
    by_header = parse_message_id_header(value)
    if by_header is not None:
        if not all(0 < part < 2**63 for part in by_header):
            raise NotFound(f"There is no message {value!r}.", code="message_not_found")
        return by_header[1], by_header[0]
    token = verp_token(value)
    mid = _message_from_token(secret, token) if token else None
    if mid is not None:
        return mid, None
    raise NotFound(
        f"There is no message {value!r}: give our numeric message id or a Message-ID "
        "like <tidings.MAILING.MESSAGE@domain>.",
        code="message_not_found",
    )


def apply_event(ctx: Context, body: Any) -> dict[str, Any]:
    """Apply a provider webhook event ``{"type", "message_id", "hard"?, "detail"?}``.

    ``type`` is ``delivered``, ``bounce`` or ``complaint``; ``message_id`` our
    numeric message id, the ``Message-ID`` header we sent
    (``<tidings.MAILING.MESSAGE@domain>``, brackets optional) or the VERP
    envelope sender; ``hard`` (bounces only) defaults to true, since providers
    report a bounce once they gave up. Same effects as a report by mail.

    SMS receipts: ``type`` ``delivered``, ``undelivered``, ``expired`` or
    ``rejected``; ``message_id`` the SMSC's id of a part as a string (any of
    its forms), or our message id (a number: an HTTP gateway's receipt for the
    whole message). A string is looked up among the parts first; an SMSC id
    that names no part yet is kept until its part is recorded (``applied``
    false). ``{"type": "inbound", "from", "text"}`` is a reply
    (:func:`tidings.services.replies.apply_event`).

    Returns ``{"applied", "type", "message_id", "mailing_id"}``: ``applied`` is
    false when the event changed nothing (a repeat, or a message never handed
    to a server). Raises :class:`InvalidInput` (422) for a malformed body and
    :class:`NotFound` ``message_not_found`` (404) for an unknown message.
    """
    if not isinstance(body, dict):
        raise InvalidInput(
            'The event must be a JSON object like {"type": "bounce", "message_id": 1}.', field="type"
        )
    if body.get("type") == "inbound":
        return replies.apply_event(ctx, body)
    unknown = set(body) - {"type", "message_id", "hard", "detail"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(EVENT_TYPES)}.", field="type")
    if "message_id" not in body or body["message_id"] in (None, ""):
        raise InvalidInput("message_id is required.", field="message_id")
    hard = body.get("hard", True)
    if not isinstance(hard, bool):
        raise InvalidInput("hard must be true or false.", field="hard")
    if "hard" in body and kind != "bounce":
        raise InvalidInput("hard applies to bounces only.", field="hard")
    note = body.get("detail")
    if note is not None and not isinstance(note, str):
        raise InvalidInput("detail must be a string.", field="detail")
    secret = ctx.secret
    value = body["message_id"]
    receipt = kind in SMS_RECEIPTS or kind == "delivered"
    if receipt and isinstance(value, str) and receipts.find_part(ctx, value):
        return receipts.apply_webhook(ctx, kind, value)
    try:
        mid, mailing_id = _resolve_event_message(secret, value)
        with ctx.read() as conn:
            found = store.message(conn, mid)
        if found is None or (mailing_id is not None and found["mailing_id"] != mailing_id):
            raise NotFound(f"There is no message {body['message_id']!r}.", code="message_not_found")
    except NotFound:
        if receipt and isinstance(value, str) and parse_message_id_header(value) is None:
            return receipts.apply_webhook(ctx, kind, value.strip())  # an SMSC id, early
        raise
    with ctx.tx() as conn:
        message = store.message(conn, mid)
        if message is None:
            raise NotFound(f"There is no message {body['message_id']!r}.", code="message_not_found")
        if message["channel"] == "sms":
            applied = receipt and receipts.apply_to_message(ctx, conn, message, kind, note=note)
            return {"applied": applied, "type": kind, "message_id": mid, "mailing_id": message["mailing_id"]}
        if kind in SMS_RECEIPTS:
            raise InvalidInput(f"{kind} is a receipt for an SMS, and message {mid} is an email: an "
                               "email that did not arrive is a bounce.", field="type")
        applied = False
        if _usable(message, f"message {mid}"):
            applied = _apply(
                ctx,
                conn,
                message,
                kind=kind,
                hard=hard,
                detail={"source": "webhook", "hard": hard if kind == "bounce" else None, "detail": note},
            )
        return {"applied": applied, "type": kind, "message_id": mid, "mailing_id": message["mailing_id"]}


def start_listener(ctx: Context) -> BounceListener | None:
    """Start the inbound SMTP listener on ``TIDINGS_BOUNCE_LISTEN``; None when it is unset.

    Each report it reads goes to :func:`apply_report`. Returns the running
    :class:`~tidings.feedback.inbound.BounceListener` (call ``stop()``), or None
    also when the address is taken: several Tidings processes on one host
    share one listener, so the second logs a warning and goes on without.
    Raises :class:`InvalidInput` for a malformed setting.
    """
    listen = ctx.settings.bounce_listen
    if not listen:
        return None

    def on_report(report: FeedbackReport, _raw: bytes) -> None:
        apply_report(ctx, report)

    listener = BounceListener.from_setting(listen, on_report)
    try:
        return listener.start()
    except OSError as exc:
        log.warning(
            "no bounce listener in this process: %s is taken (%s); another Tidings "
            "process on this host probably listens there",
            listen,
            exc,
        )
        return None
