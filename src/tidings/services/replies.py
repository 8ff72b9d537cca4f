"""Replies to SMS: STOP, START and HELP from a phone.

Two ways in, one effect:

- :func:`apply_inbound`, the SMPP transport's ``on_inbound`` callback (a
  ``deliver_sm`` that is no receipt), wired by
  :func:`tidings.services.sending.make_worker`, which also passes ``reply``:
  the answer to HELP goes back through the same SMSC, from the same sender;
- :func:`apply_event`, for ``POST /api/v1/events`` with ``{"type":
  "inbound", "from", "text"}`` from an HTTP gateway. Tidings cannot send
  through that gateway on its own initiative, so the answer to HELP is in the
  response (``reply``) for the gateway to send.

What a keyword does (:func:`tidings.domain.sms_replies.keyword`, the whole
message in any case; ``TIDINGS_SMS_STOP_WORDS`` adds words):

``STOP`` (STOPALL, UNSUBSCRIBE, CANCEL, END, QUIT)
    Every customer with that phone becomes ``unsubscribed`` from SMS (from
    ``subscribed`` or ``bounced``). The last SMS sent to the phone in the 30
    days before is marked unsubscribed and counted once in its mailing's
    ``unsubscribed``.
``START`` (UNSTOP, YES)
    Every customer with that phone who is ``unsubscribed`` from SMS is
    ``subscribed`` again (a bounce or complaint stays).
``HELP``
    ``TIDINGS_SMS_HELP_TEXT`` is the answer; unset, nothing is sent.

Anything else is logged (its first 160 characters) and changes nothing.
Every keyword is appended to ``feedback_events`` (type ``sms_stop``,
``sms_start``, ``sms_help``; the customers with that phone and how many
changed).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from tidings.domain.phones import inbound_phone
from tidings.domain.sms import InboundMessage
from tidings.domain.sms_replies import Keyword, keyword
from tidings.errors import InvalidInput
from tidings.services.context import Context
from tidings.store import engagement as engagement_store
from tidings.store import feedback as feedback_store
from tidings.store import sms as store

log = logging.getLogger("tidings.replies")

#: A STOP counts against the last SMS sent to the phone this long before.
STOP_ATTRIBUTION = timedelta(days=30)

Reply = Callable[[str, str], None]


def apply_inbound(ctx: Context, message: InboundMessage, *, reply: Reply | None = None) -> dict[str, Any]:
    """Act on a reply that came through the SMSC (see the module docstring);
    ``reply(phone, text)`` sends the answer to HELP."""
    result = handle(ctx, sender=message.source, text=message.text)
    if result["reply"] and reply is not None:
        try:
            reply(result["from"], result["reply"])
        except Exception:  # noqa: BLE001 - the keyword took effect; only the answer failed
            log.exception("cannot answer HELP from %s", result["from"])
    return result


def apply_event(ctx: Context, body: dict[str, Any]) -> dict[str, Any]:
    """``{"type": "inbound", "from": PHONE, "text"}`` from a webhook. Returns
    ``{"type", "from", "keyword", "customers", "reply"}``: ``from`` in E.164,
    ``keyword`` stop|start|help or null, ``customers`` how many changed,
    ``reply`` the answer to HELP for the gateway to send (null: none).
    InvalidInput (422) naming the field for a malformed body."""
    unknown = set(body) - {"type", "from", "text"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    sender, text = body.get("from"), body.get("text")
    if not isinstance(sender, str) or not sender.strip():
        raise InvalidInput("from is required: the phone number the reply came from.", field="from")
    if not isinstance(text, str):
        raise InvalidInput("text is required: what the reply says.", field="text")
    return handle(ctx, sender=sender, text=text)


def handle(ctx: Context, *, sender: str, text: str) -> dict[str, Any]:
    """The effect of one reply (see the module docstring), in one transaction."""
    phone = inbound_phone(sender, region=ctx.settings.default_region)
    said = keyword(text, stop_words=ctx.settings.stop_words)
    result: dict[str, Any] = {"type": "inbound", "from": phone or sender, "keyword": said and said.value,
                              "customers": 0, "reply": None}
    if said is None or phone is None:
        log.info("a reply from %s that asks for nothing: %r", sender, text[:160])
        return result
    now = ctx.now()
    with ctx.tx() as conn:
        people = [c["id"] for c in store.customers_with_phone(conn, phone)]
        last = store.last_message_to(conn, phone, since=now - STOP_ATTRIBUTION)
        if said is Keyword.STOP:
            changed = store.set_sms_status(conn, people, "unsubscribed", only_from=("subscribed", "bounced"),
                                           now=now)
            if last is not None:
                engagement_store.mark_unsubscribed(conn, last, now=now)
        elif said is Keyword.START:
            changed = store.set_sms_status(conn, people, "subscribed", only_from=("unsubscribed",), now=now)
        else:
            changed = 0
            result["reply"] = ctx.settings.sms_help_text or None
        result["customers"] = changed
        feedback_store.record_event(
            conn, type=f"sms_{said.value}", message_id=last["id"] if last else None, now=now,
            # the customers, not the phone: erasing a customer then leaves no number behind
            detail=json.dumps({"customer_ids": people, "changed": changed}, sort_keys=True))
    log.info("%s from %s: %d customers changed", said.value.upper(), phone, changed)
    return result
