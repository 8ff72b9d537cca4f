"""Test sends: one rendered message to a test address.

Who a test may go to, how many an actor may send, and the quota it takes are
the rules of :mod:`tidings.services.test_addresses`; each test sent is in the
audit log. Otherwise a test message is counted nowhere: no message row, no
statistics; its tracking links work and record nothing (they carry
:data:`~tidings.domain.tracking.TEST_MESSAGE_ID`). It is DKIM-signed like the
mailing's own messages when its domain has a key.
"""

from __future__ import annotations

import secrets
from typing import Any

from email_validator import EmailNotValidError, validate_email

from tidings.domain.actors import Actor
from tidings.domain.conversions import utm_tags
from tidings.domain.mailings import Channel, Mailing, MailingStatus
from tidings.domain.messages import Recipient, recipient_of, sample_recipient
from tidings.domain.tracking import TEST_MESSAGE_ID
from tidings.engine import lifecycle
from tidings.engine.render import EmailRenderer, renderer_for
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services import audit, shop, test_addresses
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import mailings as mailing_store
from tidings.store import templates as template_store
from tidings.store.sending import SqlTransaction
from tidings.transports.base import Envelope, Result
from tidings.transports.factory import make_transport
from tidings.transports.mime import MessageFactory


def send_test(ctx: Context, mailing_id: int, data: dict[str, Any], *, actor: Actor) -> dict[str, Any]:
    """Send one rendered message of an email mailing to ``data["email"]``, a test
    address (:func:`tidings.services.test_addresses.admit`).

    The message is the mailing's own (template, sender, UTM tags). Raises
    what ``admit`` raises,
    ``InvalidInput`` (bad address, SMS mailing, the mailing is not ready),
    ``NotFound``, ``Conflict(code="domain_not_verified")`` like a real send,
    and ``Conflict(code="test_send_failed")`` when the server refused or could
    not be reached, with its reply.
    """
    address = data.get("email") if isinstance(data, dict) else None
    if not isinstance(address, str) or not address.strip():
        raise InvalidInput("Give the address to send the test to: {\"email\": ...}.", field="email")
    with ctx.read() as conn:
        mailing = mailing_store.get(conn, mailing_id)
        if mailing is None:
            raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
        if mailing.channel is not Channel.EMAIL:
            raise InvalidInput("Test sends are for email mailings.", field="email")
        lifecycle.check_ready(SqlTransaction(conn), ctx.policy, mailing)
    sent = _send(ctx, mailing=mailing, label=str(mailing.id), header_mailing_id=str(mailing.id),
                 to=address, customer_id=None, field="email", headers={}, actor=actor,
                 audit_as=("mailing.test_send", f"mailing {mailing.id} “{mailing.name}”",
                           {"mailing_id": mailing.id}))
    return {"sent": True, "email": sent["email"], "mailing_id": mailing_id,
            "transport": sent["transport"]}


def send_template_test(ctx: Context, template_id: int, *, to: str, customer_id: int | None,
                       actor: Actor) -> None:
    """Send the saved email template to the address ``to``, a test address
    (:func:`tidings.services.test_addresses.admit`), once, as a test.

    It comes from the default sender (:func:`~tidings.services.shop.default_sender`), rendered for
    ``customer_id``, else for the customer with that address, else for the
    sample customer; it says ``X-Tidings-Mailing: test`` and
    ``X-Tidings-Template``. Raises ``NotFound``, ``InvalidInput`` (an SMS
    template, a bad address: ``field="to"``; an unknown customer:
    ``field="customer"``), and ``Conflict`` with code ``domain_not_verified``
    or ``test_send_failed``.
    """
    if not to.strip():
        raise InvalidInput("Give the address to send the test to.", field="to")
    default = shop.default_sender(ctx)
    from_email = default.email
    with ctx.read() as conn:
        template = template_store.get(conn, template_id)
        if template is None:
            raise NotFound(f"There is no template {template_id}.", code="template_not_found")
        if template.channel != Channel.EMAIL:
            raise InvalidInput("Test sends are for email templates.", field="to")
        lifecycle.check_sending_domain(SqlTransaction(conn), ctx.policy, from_email)
    sender = Mailing(id=0, name=f"Test of {template.name}", channel=Channel.EMAIL,
                     status=MailingStatus.DRAFT, template_id=template_id, from_email=from_email,
                     from_name=default.name)
    _send(ctx, mailing=sender, label=f"template-{template_id}", header_mailing_id="test", to=to,
          customer_id=customer_id, field="to", headers={"X-Tidings-Template": str(template_id)},
          actor=actor, audit_as=("template.test_send", f"template {template_id} “{template.name}”",
                                 {"template_id": template_id}))


def _send(ctx: Context, *, mailing: Mailing, label: str, header_mailing_id: str, to: str,
          customer_id: int | None, field: str, headers: dict[str, str], actor: Actor,
          audit_as: tuple[str, str, dict[str, Any]]) -> dict[str, str]:
    """Send one test message of ``mailing``'s email template to the address ``to``,
    admitted by :func:`~tidings.services.test_addresses.admit` and recorded in
    the audit log as ``audit_as`` (action, subject, detail).

    Personalised for ``customer_id`` when given, else for the customer with
    the address ``to`` if there is one, else for the sample customer. Returns
    ``{"email": the normalised address, "transport": its description}``.
    """
    try:
        address = validate_email(to.strip(), check_deliverability=False).normalized
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field, manager_message=str(exc)) from None
    secret = ctx.secret  # read outside the transaction (it may be stored on first use)
    with ctx.read() as conn:
        renderer = renderer_for(SqlTransaction(conn), mailing, secret=secret,
                                public_url=ctx.settings.public_url)
        if customer_id is None:
            customer = customer_store.find_by_email(conn, address)
        else:
            customer = customer_store.get(conn, customer_id)
            if customer is None:
                raise InvalidInput(f"There is no customer {customer_id}.", field="customer")
    assert isinstance(renderer, EmailRenderer)
    recipient = recipient_of(customer, address=address) if customer else sample_recipient(address)
    envelope = _envelope(renderer, recipient=recipient, label=label,
                         header_mailing_id=header_mailing_id, headers=headers)
    with ctx.tx() as conn:
        test_addresses.admit(conn, ctx, address, actor=actor, field=field)
    transport = make_transport(ctx.settings.smtp_url, connections=1, timeout=ctx.settings.smtp_timeout)
    try:
        (outcome,) = transport.send([envelope])
    except BaseException:
        test_addresses.give_back(ctx)
        raise
    finally:
        transport.close()
    if outcome.result is not Result.SENT:
        test_addresses.give_back(ctx)
        reply = " ".join(str(p) for p in (outcome.code, outcome.detail) if p) or outcome.result.value
        raise Conflict(f"The test message to {address} was not sent: {reply}.",
                       code="test_send_failed")
    action, subject, detail = audit_as
    with ctx.tx() as conn:
        audit.record(conn, actor, action, subject, detail | {"to": address}, at=ctx.now())
    return {"email": address, "transport": transport.description}


def _envelope(renderer: EmailRenderer, *, recipient: Recipient, label: str, header_mailing_id: str,
              headers: dict[str, str]) -> Envelope:
    """The mailing's message for one address, like :meth:`EmailRenderer.envelope`
    but with message id :data:`TEST_MESSAGE_ID` in its links, the UTM tags
    already in the link URLs (a test click has no mailing to take them from), a
    fresh ``Message-ID`` per test, and an ``X-Tidings-Test`` header."""
    mailing = renderer.mailing
    factory = MessageFactory(from_email=mailing.from_email or "", from_name=mailing.from_name,
                             reply_to=mailing.reply_to, mailing_id=header_mailing_id,
                             headers={"X-Tidings-Test": "yes", **headers})
    return renderer.assemble(
        message_id=TEST_MESSAGE_ID, customer=recipient.customer_context(), to=recipient.address,
        utm=utm_tags(mailing.conversion), factory=factory,
        message_id_header=f"<tidings.test.{label}.{secrets.token_hex(8)}@{renderer.domain}>",
    )
