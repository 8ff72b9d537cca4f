"""Tracking hits and unsubscribes (called by the public endpoints, no login).

- :func:`record_open` and :func:`record_click` verify the signed token,
  record the first open or click of the message (a click is also an open)
  and bump the mailing's running counter once per message. Hits that
  :func:`~tidings.domain.engagement.is_machine` recognises are recorded nowhere.
- :func:`record_click` returns where to send the browser: the link's URL
  with the mailing's UTM tags merged when ``conversion.utm.enabled``.
- :func:`unsubscribe` takes effect at once and is idempotent.
- :func:`follow_short` is an SMS's short link (``/s/TOKEN``): a click counted
  as :func:`record_click` counts one (no open: an SMS has none), redirecting
  to the link with the UTM tags; link number 0 leads to the unsubscribe page.

A tampered or foreign token raises ``InvalidInput(code="bad_token")`` before
anything is read or written; a valid token whose message no longer exists
(its mailing was deleted, or a test send) records nothing.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlsplit

from tidings.domain.conversions import utm_tags
from tidings.domain.engagement import is_machine
from tidings.domain.templates import merge_utm
from tidings.domain.tracking import (
    TEST_MESSAGE_ID,
    sign_message_token,
    verify_click,
    verify_message_token,
    verify_short,
)
from tidings.engine.render import UNSUBSCRIBE_LINK
from tidings.errors import InvalidInput
from tidings.services.context import Context
from tidings.store import engagement as store
from tidings.store import sms as sms_store

log = logging.getLogger("tidings.tracking")


def _safe_target(url: str) -> bool:
    """Only absolute http(s) URLs without control characters are redirected to.

    The URL was signed by us, so this is belt and braces against a template
    author's odd link reaching a ``Location`` header."""
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)



def record_open(ctx: Context, token: str, *, user_agent: str | None, method: str = "GET") -> bool:
    """Record the open a pixel fetch means. True when it was the message's first
    counted open. Raises ``InvalidInput(code="bad_token")`` for a bad token."""
    message_id = verify_message_token(ctx.secret, token, "open")
    if is_machine(user_agent, method=method):
        log.debug("machine open of message %s by %r ignored", message_id, user_agent)
        return False
    with ctx.tx() as conn:
        message = store.tracked_message(conn, message_id)
        if message is None:
            return False
        return store.mark_opened(conn, message, now=ctx.now())


def record_click(ctx: Context, token: str, *, user_agent: str | None, method: str = "GET") -> str:
    """Record the click and return the URL to redirect to.

    The first counted click of a message sets its first click time and, if
    it had none, its first open time, each counter growing once. Raises
    ``InvalidInput(code="bad_token")`` for a tampered or foreign token, and
    for a URL that is not an absolute ``http(s)`` one.
    """
    message_id, url = verify_click(ctx.secret, token)
    if not _safe_target(url):
        raise InvalidInput("The link or token is invalid or has been altered.", code="bad_token")
    machine = is_machine(user_agent, method=method)
    if message_id == TEST_MESSAGE_ID:
        return url  # a test send: the UTM tags are already in the URL
    with ctx.tx() as conn:
        message = store.tracked_message(conn, message_id)
        if message is None:
            return url
        if machine:
            log.debug("machine click on message %s by %r ignored", message_id, user_agent)
        else:
            now = ctx.now()
            if store.mark_clicked(conn, message, now=now):
                store.mark_opened(conn, message, now=now)
        return merge_utm(url, utm_tags(message["conversion"]))


def follow_short(ctx: Context, token: str, *, user_agent: str | None, method: str = "GET") -> str:
    """Record the click of an SMS short link; return where to redirect: the
    link with the mailing's UTM tags, or for link 0 the message's unsubscribe
    page (``/u/TOKEN``, relative). Raises ``InvalidInput(code="bad_token")``
    for a tampered token, one whose link is not of its message's mailing, or
    an unknown link."""
    message_id, link = verify_short(ctx.secret, token)
    if link == UNSUBSCRIBE_LINK:
        return f"/u/{sign_message_token(ctx.secret, message_id, 'unsub')}"
    machine = is_machine(user_agent, method=method)
    with ctx.tx() as conn:
        target = sms_store.link_target(conn, link)
        message = store.tracked_message(conn, message_id)
        if target is None or (message is not None and message["mailing_id"] != target[0]) \
                or not _safe_target(target[1]):
            raise InvalidInput("The link or token is invalid or has been altered.", code="bad_token")
        url = target[1]
        if message is None:
            return url
        if machine:
            log.debug("machine click on message %s by %r ignored", message_id, user_agent)
        else:
            store.mark_clicked(conn, message, now=ctx.now())
        return merge_utm(url, utm_tags(message["conversion"]))


def unsubscribe_state(ctx: Context, token: str) -> dict[str, Any]:
    """What the confirmation page shows: ``{"channel", "unsubscribed"}``, where
    ``unsubscribed`` says whether the customer is already off that channel.
    Reads only. Raises ``InvalidInput(code="bad_token")``."""
    message_id = verify_message_token(ctx.secret, token, "unsub")
    with ctx.read() as conn:
        message = store.tracked_message(conn, message_id)
        if message is None:
            return {"channel": "email", "unsubscribed": False, "known": False}
        status = store.channel_status(conn, message["customer_id"], message["channel"])
        return {"channel": message["channel"], "unsubscribed": status not in (None, "subscribed"),
                "known": True}


def unsubscribe(ctx: Context, token: str) -> dict[str, Any]:
    """Unsubscribe the message's customer from its mailing's channel, at once.

    Idempotent: repeating it changes nothing and counts nothing. Needs no
    login and no body (RFC 8058 one-click). Returns ``{"channel", "counted"}``
    where ``counted`` says whether this call added to the mailing's
    ``unsubscribed`` count. Raises ``InvalidInput(code="bad_token")``.
    """
    message_id = verify_message_token(ctx.secret, token, "unsub")
    with ctx.tx() as conn:
        message = store.tracked_message(conn, message_id)
        if message is None:
            return {"channel": "email", "counted": False}
        counted = store.mark_unsubscribed(conn, message, now=ctx.now())
        return {"channel": message["channel"], "counted": counted}


