"""Engagement and conversion use cases: tracking hits, unsubscribes, orders, test sends.

Tracking (called by the public endpoints, no login):

- :func:`record_open` and :func:`record_click` verify the signed token,
  record the first open or click of the message (a click is also an open)
  and bump the mailing's running counter once per message. Hits that
  :func:`~tidings.domain.engagement.is_machine` recognises are recorded nowhere.
- :func:`record_click` returns where to send the browser: the link's URL
  with the mailing's UTM tags merged when ``conversion.utm.enabled``.
- :func:`unsubscribe` takes effect at once and is idempotent.

A tampered or foreign token raises ``InvalidInput(code="bad_token")`` before
anything is read or written; a valid token whose message no longer exists
(its mailing was deleted, or a test send) records nothing.

Orders: :func:`create_order` and :func:`import_orders` attribute each order
with :func:`~tidings.domain.engagement.attribute` and update the mailing's
``orders_count``/``revenue`` and the customer's ``orders_count``,
``orders_total`` and ``last_order_at`` in the same transaction.
"""

from __future__ import annotations

import logging
import secrets
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from tidings.domain.engagement import (
    OrderInput,
    attribute,
    is_machine,
    money,
    parse_orders_csv,
    validate_order,
)
from tidings.domain.mailings import UTM_KEYS
from tidings.domain.templates import merge_utm
from tidings.domain.tracking import verify_click, verify_message_token
from tidings.engine.render import EmailRenderer, customer_context, renderer_for
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services.context import Context
from tidings.services.mailings import check_ready
from tidings.store import customers as customer_store
from tidings.store import engagement as store
from tidings.store import mailings as mailing_store
from tidings.transports.base import Envelope, Result
from tidings.transports.mime import MessageFactory
from tidings.transports.smtp import make_transport

log = logging.getLogger("tidings.engagement")

#: The message id carried by the links of a test send: no message row has it.
TEST_MESSAGE_ID = 0


def utm_tags(conversion: dict[str, Any] | None) -> dict[str, str]:
    """The UTM tags to merge into a mailing's links; empty when UTM is off."""
    utm = (conversion or {}).get("utm") or {}
    if not utm.get("enabled"):
        return {}
    return {key: utm[key] for key in UTM_KEYS if utm.get(key)}


def _safe_target(url: str) -> bool:
    """Only absolute http(s) URLs without control characters are redirected to.

    The URL was signed by us, so this is belt and braces against a template
    author's odd link reaching a ``Location`` header."""
    if any(ord(c) < 32 or ord(c) == 127 for c in url):
        return False
    parts = urlsplit(url)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


# -- tracking -----------------------------------------------------------------------


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


def unsubscribe_state(ctx: Context, token: str) -> dict[str, Any]:
    """What the confirmation page shows: ``{"channel", "unsubscribed"}``, where
    ``unsubscribed`` says whether the customer is already off that channel.
    Reads only. Raises ``InvalidInput(code="bad_token")``."""
    message_id = verify_message_token(ctx.secret, token, "unsub")
    with ctx.tx() as conn:
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


# -- orders ---------------------------------------------------------------------------


def order_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": row["id"], "external_id": row["external_id"], "customer_id": row["customer_id"],
        "total": money(row["total"]), "created_at": row["ordered_at"].isoformat(),
        "utm": row["utm"] or {}, "mailing_id": row["mailing_id"],
        "message_id": row["message_id"], "recorded_at": row["created_at"].isoformat(),
    }


def _record(conn: sa.Connection, ctx: Context, order: OrderInput) -> dict[str, Any]:
    """Attribute and store one valid order in the caller's transaction."""
    if order.customer_id is not None:
        customer = customer_store.get(conn, order.customer_id)
        if customer is None:
            raise InvalidInput(f"There is no customer {order.customer_id}.", field="customer_id")
    else:
        assert order.customer_email is not None
        customer = customer_store.find_by_email(conn, order.customer_email)
        if customer is None:
            raise InvalidInput(f"There is no customer with the email {order.customer_email}.",
                               field="customer_email")
    if store.order_exists(conn, order.external_id):
        raise Conflict(f"An order {order.external_id} was already recorded.",
                       code="duplicate_order")
    credit = attribute(order.ordered_at, store.reaches(conn, customer["id"], before=order.ordered_at))
    now = ctx.now()
    try:
        order_id = store.insert_order(conn, {
            "external_id": order.external_id, "customer_id": customer["id"],
            "total": order.total, "utm": order.utm or None,
            "mailing_id": credit.mailing_id if credit else None,
            "message_id": credit.message_id if credit else None,
            "ordered_at": order.ordered_at, "created_at": now,
        })
    except sa.exc.IntegrityError:  # the same order recorded concurrently
        raise Conflict(f"An order {order.external_id} was already recorded.",
                       code="duplicate_order") from None
    if credit is not None:
        store.add_conversion(conn, credit.mailing_id, order.total)
    store.add_customer_order(conn, customer["id"], total=order.total,
                             ordered_at=order.ordered_at, now=now)
    row = store.get_order(conn, order_id)
    assert row is not None
    return order_json(row)


def create_order(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Record one order (see :func:`~tidings.domain.engagement.validate_order`)
    and return it with ``mailing_id`` (the mailing credited, or null).

    Raises ``InvalidInput`` (bad field, unknown customer) and
    ``Conflict(code="duplicate_order")`` for an ``external_id`` seen before;
    nothing is written then.
    """
    order = validate_order(data)
    with ctx.tx() as conn:
        return _record(conn, ctx, order)


def get_order(ctx: Context, order_id: int) -> dict[str, Any]:
    with ctx.tx() as conn:
        row = store.get_order(conn, order_id)
        if row is None:
            raise NotFound(f"There is no order {order_id}.", code="order_not_found")
        return order_json(row)


def import_orders(ctx: Context, data: bytes) -> dict[str, Any]:
    """Record the orders of a CSV file (see
    :func:`~tidings.domain.engagement.parse_orders_csv`); good lines are kept.

    Returns ``{"created": n, "attributed": n, "errors": [{"line", "message"}]}``,
    errors in line order. Raises ``InvalidInput`` only for a file that cannot
    be read at all (no header, a required column missing).
    """
    parsed = parse_orders_csv(data)
    errors = list(parsed.errors)
    created = attributed = 0
    with ctx.tx() as conn:
        for line, order in parsed.orders:
            try:
                with conn.begin_nested():
                    recorded = _record(conn, ctx, order)
            except (InvalidInput, Conflict) as exc:
                errors.append((line, exc.message))
                continue
            created += 1
            attributed += recorded["mailing_id"] is not None
    return {"created": created, "attributed": attributed,
            "errors": [{"line": line, "message": text} for line, text in sorted(errors)]}


# -- test send ------------------------------------------------------------------------


def send_test(ctx: Context, mailing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Send one rendered message of an email mailing to ``data["email"]``.

    The message is the mailing's own (template, sender, UTM tags), sent by
    :func:`send_test_message`. Raises ``InvalidInput`` (bad address, SMS
    mailing, the mailing is not ready), ``NotFound``,
    ``Conflict(code="domain_not_verified")`` like a real send, and
    ``Conflict(code="test_send_failed")`` when the server refused or could not
    be reached, with its reply.
    """
    address = data.get("email") if isinstance(data, dict) else None
    if not isinstance(address, str) or not address.strip():
        raise InvalidInput("Give the address to send the test to: {\"email\": ...}.", field="email")
    with ctx.read() as conn:
        mailing = mailing_store.get(conn, mailing_id)
        if mailing is None:
            raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
        if mailing["channel"] != "email":
            raise InvalidInput("Test sends are for email mailings.", field="email")
        check_ready(conn, ctx, mailing)
    sent = send_test_message(ctx, mailing=mailing, to=address, customer_id=None, field="email")
    return {"sent": True, "email": sent["email"], "mailing_id": mailing_id,
            "transport": sent["transport"]}


def send_test_message(ctx: Context, *, mailing: dict[str, Any], to: str, customer_id: int | None,
                      field: str = "email", headers: dict[str, str] | None = None) -> dict[str, str]:
    """Send one test message of ``mailing``'s email template to the address ``to``.

    ``mailing`` is a mailing row the caller has checked (``check_ready``), or
    one made up for a template (``"id": None``, with ``template_id``,
    ``from_email``, ``from_name``, ``reply_to``, ``name``, ``conversion``).
    The message is personalised for ``customer_id`` when given, else for the
    customer with the address ``to`` if there is one, else for a sample
    customer; it carries an ``X-Tidings-Test`` header (and ``headers``). It
    goes through the configured transport but is not counted anywhere, uses
    no quota and leaves no message row; its tracking links work and record
    nothing.

    Returns ``{"email": the normalised address, "transport": its description}``.
    Raises ``InvalidInput`` naming ``field`` for a bad address (``"customer"``
    for an unknown customer), and ``Conflict(code="test_send_failed")`` with
    the server's reply when it refused or could not be reached.
    """
    try:
        address = validate_email(to.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field, manager_message=str(exc)) from None
    secret = ctx.secret  # read outside the transaction (it may be stored on first use)
    with ctx.read() as conn:
        renderer = renderer_for(conn, mailing, secret=secret, public_url=ctx.settings.public_url)
        if customer_id is None:
            customer = customer_store.find_by_email(conn, address)
        else:
            customer = customer_store.get(conn, customer_id)
            if customer is None:
                raise InvalidInput(f"There is no customer {customer_id}.", field="customer")
    assert isinstance(renderer, EmailRenderer)
    envelope = _test_envelope(renderer, customer=customer, address=address,
                              headers=headers or {})
    transport = make_transport(ctx.settings.smtp_url, connections=1,
                               timeout=ctx.settings.smtp_timeout)
    try:
        (outcome,) = transport.send([envelope])
    finally:
        transport.close()
    if outcome.result is not Result.SENT:
        reply = " ".join(str(p) for p in (outcome.code, outcome.detail) if p) or outcome.result.value
        raise Conflict(f"The test message to {address} was not sent: {reply}.",
                       code="test_send_failed")
    return {"email": address, "transport": transport.description}


def _test_envelope(renderer: EmailRenderer, *, customer: dict[str, Any] | None,
                   address: str, headers: dict[str, str]) -> Envelope:
    """The mailing's message for one address, like :meth:`EmailRenderer.envelope`
    but with message id :data:`TEST_MESSAGE_ID` in its links, the UTM tags
    already in the link URLs (a test click has no mailing to take them from), a
    fresh ``Message-ID`` per test, and an ``X-Tidings-Test`` header. A template's
    test (no mailing) says ``X-Tidings-Mailing: test``."""
    mailing = renderer.mailing
    label = mailing["id"] if mailing["id"] is not None else f"template-{mailing['template_id']}"
    person = customer or {"id": None, "external_id": None, "email": address, "phone": None,
                          "first_name": "Alex", "last_name": "Example", "attributes": {}}
    row = SimpleNamespace(customer_id=person["id"], **{
        k: person[k] for k in ("external_id", "email", "phone", "first_name", "last_name",
                               "attributes")})
    factory = MessageFactory(from_email=mailing["from_email"], from_name=mailing["from_name"],
                             reply_to=mailing["reply_to"],
                             mailing_id=mailing["id"] if mailing["id"] is not None else "test",
                             headers={"X-Tidings-Test": "yes", **headers})
    # DKIM-signed like the mailing's own messages when its domain has a key.
    return renderer.assemble(
        message_id=TEST_MESSAGE_ID, customer=customer_context(row), to=address,
        utm=utm_tags(mailing["conversion"]), factory=factory,
        message_id_header=f"<tidings.test.{label}.{secrets.token_hex(8)}@{renderer.domain}>",
    )
