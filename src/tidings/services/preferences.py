"""The pages a customer reaches from a message (no login; the signed token in
the link is the key): who is asking, what they get, unsubscribe, undo, and
their choice per channel (the rules: :mod:`tidings.domain.preferences`).

The one-click unsubscribe itself (RFC 8058) is
:func:`tidings.services.tracking.unsubscribe`; these functions add what the
pages show around it. A tampered or foreign token raises
``InvalidInput(code="bad_token")`` before anything is read.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain import preferences as rules
from tidings.domain.tracking import verify_message_token
from tidings.services import shop, tracking
from tidings.services.context import Context
from tidings.store import engagement
from tidings.store import preferences as store

ADDRESS = {"email": "email", "sms": "phone"}


def _message(ctx: Context, conn: sa.Connection, token: str) -> dict[str, Any] | None:
    return engagement.tracked_message(conn, verify_message_token(ctx.secret, token, "unsub"))


def page(ctx: Context, token: str) -> dict[str, Any]:
    """What the pages show: ``{"known", "channel", "channels": [{"channel",
    "words", "masked", "status", "choosable", "subscribed"}], "shop", "shop_name"}``.
    ``known`` is false when the message or its customer is gone (deleted, erased)."""
    verify_message_token(ctx.secret, token, "unsub")
    settings = shop.get_shop(ctx)
    with ctx.read() as conn:
        message = _message(ctx, conn, token)
        person = store.contacts(conn, message["customer_id"]) if message else None
        sender = store.sender_name(conn, message["mailing_id"]) if message else None
    channels = []
    for channel in rules.CHANNELS:
        address = person[ADDRESS[channel]] if person else None
        if not address:
            continue
        status = person[f"{channel}_status"] if person else None
        channels.append({"channel": channel, "words": rules.WORDS[channel],
                         "masked": rules.mask(channel, address), "status": status,
                         "choosable": rules.may_choose(status),
                         "subscribed": status == "subscribed"})
    channel = message["channel"] if message else "email"
    return {"known": person is not None, "channel": channel, "words": rules.WORDS[channel],
            "channels": channels, "shop": settings,
            "shop_name": settings.name or sender or "the shop",
            "this": next((c for c in channels if c["channel"] == channel), None)}


def unsubscribe(ctx: Context, token: str) -> dict[str, Any]:
    """Unsubscribe (the one-click effect), then what the confirmation shows."""
    tracking.unsubscribe(ctx, token)
    return page(ctx, token)


def resubscribe(ctx: Context, token: str) -> dict[str, Any]:
    """Undo an unsubscribe by mistake: the message's channel is subscribed again
    and the mailing's unsubscribe count loses it, when the customer is still
    ``unsubscribed`` there (a bounce or complaint since is not undone)."""
    with ctx.tx() as conn:
        message = _message(ctx, conn, token)
        if message is not None and store.set_status(
                conn, message["customer_id"], message["channel"], "subscribed",
                only_from=("unsubscribed",), now=ctx.now()):
            store.undo_unsubscribe(conn, message)
    return page(ctx, token)


def save(ctx: Context, token: str, wanted: dict[str, bool]) -> dict[str, Any]:
    """Apply the customer's choice (``{channel: wants it}``) for the channels
    they may switch. Switching off the message's own channel counts as an
    unsubscribe from its mailing; switching it back on undoes that."""
    with ctx.tx() as conn:
        message = _message(ctx, conn, token)
        person = store.contacts(conn, message["customer_id"]) if message else None
        if message is not None and person is not None:
            current = {c: person[f"{c}_status"] if person[ADDRESS[c]] else None
                       for c in rules.CHANNELS}
            now = ctx.now()
            for channel, status in rules.changes(current, wanted).items():
                if channel == message["channel"] and status == "unsubscribed":
                    engagement.mark_unsubscribed(conn, message, now=now)
                    continue
                store.set_status(conn, message["customer_id"], channel, status,
                                 only_from=("subscribed", "unsubscribed", "complained"), now=now)
                if channel == message["channel"]:
                    store.undo_unsubscribe(conn, message)
    return page(ctx, token)
