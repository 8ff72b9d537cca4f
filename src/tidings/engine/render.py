"""Per-mailing message assembly: compile once, fill in only the personal parts.

Email from a verified sending domain is DKIM-signed: :func:`renderer_for`
decrypts the domain's key once per renderer (one per mailing and worker) and
every envelope is signed with it.

An SMS (:class:`SmsRenderer`) has every ``http(s)://`` link replaced by a
short one, ``PUBLIC_URL/s/TOKEN`` (:func:`~tidings.domain.tracking.sign_short`:
the message and the link's number among the mailing's links), which counts
the click and redirects with the mailing's UTM tags. Its ``unsubscribe_url``
is short too (link number 0), and with ``opt_out`` the text ends with
"STOP: <that link>" unless the template shows it already
(:func:`~tidings.domain.sms_replies.with_opt_out`).

Every render is bounded by the template's rendering budget
(:mod:`tidings.domain.templates.budget`): a message whose render goes over
raises ``InvalidInput(code="template_too_costly")``, and :meth:`EmailRenderer.check_budget`
tells beforehand, with the sample customer, whether every message would.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from tidings.domain.mailings import Channel, Mailing
from tidings.domain.messages import Recipient, sample_recipient
from tidings.domain.quiet_hours import QuietHours
from tidings.domain.sms_replies import with_opt_out
from tidings.domain.templates import CompiledSms, Template, compile_email, compile_sms, merge_utm
from tidings.domain.tracking import bounce_address, click_signer, sign_message_token, sign_short
from tidings.engine.ports import Transaction
from tidings.errors import InvalidInput
from tidings.transports.base import Envelope
from tidings.transports.dkim import DkimSigner, UndecryptableSecret, decrypt_secret
from tidings.transports.mime import MessageFactory

log = logging.getLogger("tidings.worker")

#: The code of a render that went over the template's rendering budget.
TOO_COSTLY = "template_too_costly"


def message_id_header(mailing_id: int | str, message_id: int | str, *, domain: str) -> str:
    """Our ``Message-ID``: ``<tidings.MAILING.MESSAGE@domain>`` (feedback reads it back)."""
    return f"<tidings.{mailing_id}.{message_id}@{domain}>"


def unsubscribe_url(base: str, secret: bytes, message_id: int) -> str:
    """The signed unsubscribe page of a message (also its ``List-Unsubscribe``)."""
    return f"{base}/u/{sign_message_token(secret, message_id, 'unsub')}"


class EmailRenderer:
    """Builds the envelope of each message of one email mailing.

    The template is compiled and the MIME skeleton precomputed once; per message
    only the template is rendered, links are signed and the parts are joined.
    With a ``signer`` every message is DKIM-signed.
    """

    def __init__(self, *, mailing: Mailing, template: Template, secret: bytes,
                 public_url: str, signer: DkimSigner | None = None) -> None:
        assert mailing.from_email is not None
        self.mailing = mailing
        self.signer = signer
        self.secret = secret
        self.base = public_url.rstrip("/")
        self.domain = mailing.from_email.rsplit("@", 1)[1]
        self.compiled = compile_email(subject=template.subject or "", html=template.html or "",
                                      text=template.text)
        self.factory = MessageFactory(
            from_email=mailing.from_email, from_name=mailing.from_name,
            reply_to=mailing.reply_to, mailing_id=mailing.id,
        )
        self.mailing_ctx = {"id": mailing.id, "name": mailing.name}

    def message_id_header(self, message_id: int) -> str:
        return message_id_header(self.mailing.id, message_id, domain=self.domain)

    def check_budget(self, recipient: Recipient | None = None) -> None:
        """Render for ``recipient`` (the sample customer by default), links
        untouched; raises ``InvalidInput(code="template_too_costly")`` if that
        goes over the rendering budget. Other render errors depend on the
        customer's data and are left to each message."""
        _check_budget(lambda context: self.compiled.render(context), self.mailing_ctx, recipient)

    def mail_from(self, message_id: int) -> str:
        return bounce_address(self.secret, message_id, domain=self.domain)

    def envelope(self, recipient: Recipient) -> Envelope:
        """The message of one recipient."""
        return self.assemble(message_id=recipient.id, customer=recipient.customer_context(),
                             to=recipient.address)

    def assemble(self, *, message_id: int, customer: dict[str, Any], to: str,
                 utm: dict[str, str] | None = None, factory: MessageFactory | None = None,
                 message_id_header: str | None = None) -> Envelope:
        """Render, assemble and sign one message. ``utm`` puts the tags into the
        link targets themselves (a test send, whose clicks have no mailing to take
        them from); ``factory`` and ``message_id_header`` replace the mailing's."""
        mid, secret, base = message_id, self.secret, self.base
        unsubscribe = unsubscribe_url(base, secret, mid)
        sign = click_signer(secret, mid)
        if utm is None:
            def link(url: str) -> str:
                return f"{base}/t/c/{sign(url)}"
        else:
            def link(url: str) -> str:
                return f"{base}/t/c/{sign(merge_utm(url, utm))}"
        rendered = self.compiled.render(
            {"customer": customer, "unsubscribe_url": unsubscribe, "mailing": self.mailing_ctx},
            link=link, link_prefix=f"{base}/t/c/",
            open_pixel_url=f"{base}/t/o/{sign_message_token(secret, mid, 'open')}",
        )
        data = (factory or self.factory).build(
            message_id_header=message_id_header or self.message_id_header(mid), to=to,
            subject=rendered.subject, html=rendered.html, text=rendered.text,
            list_unsubscribe=unsubscribe,
        )
        if self.signer is not None:
            data = self.signer.sign(data)
        return Envelope(message_id=mid, mail_from=self.mail_from(mid), rcpt=to, data=data)


#: The link number of a short link that stands for the unsubscribe page.
UNSUBSCRIBE_LINK = 0
#: The message id the short links of a preview carry (for a realistic length),
#: signed with a key of their own so that they never lead to a real message.
PREVIEW_MESSAGE_ID = 1_000_000
PREVIEW_KEY = b"tidings preview links lead nowhere"


def short_url(base: str, secret: bytes, message_id: int, link: int) -> str:
    """``BASE/s/TOKEN``: link number ``link`` (0: unsubscribe) of a message."""
    return f"{base}/s/{sign_short(secret, message_id, link)}"


def preview_link(public_url: str, link: int = 1) -> Callable[[str], str]:
    """Short links for a preview: as long as real ones, leading nowhere."""
    base = public_url.rstrip("/")
    return lambda _url: short_url(base, PREVIEW_KEY, PREVIEW_MESSAGE_ID, link)


def sms_text(compiled: CompiledSms, context: dict[str, Any], *, link: Callable[[str], str],
             unsubscribe: str, opt_out: bool) -> str:
    """The text of one SMS: rendered with ``unsubscribe`` as ``unsubscribe_url``,
    every other ``http(s)://`` link through ``link``, and "STOP: <unsubscribe>"
    at the end when ``opt_out`` and the text does not show it already."""
    text = compiled.render({**context, "unsubscribe_url": unsubscribe}, link=link)
    return with_opt_out(text, unsubscribe) if opt_out else text


class SmsRenderer:
    """SMS text per message, with short links (see the module docstring).

    ``link_number`` gives the number of a URL among the mailing's links (the
    worker keeps them in the store); ``quiet_hours`` is the mailing's window,
    None when it has none."""

    def __init__(self, *, mailing: Mailing, template: Template, secret: bytes,
                 public_url: str, link_number: Callable[[str], int] | None = None,
                 opt_out: bool = False) -> None:
        self.mailing = mailing
        self.secret = secret
        self.base = public_url.rstrip("/")
        self.compiled = compile_sms(text=template.text or "")
        self.mailing_ctx = {"id": mailing.id, "name": mailing.name}
        self.link_number = link_number
        self.opt_out = opt_out
        quiet = mailing.quiet_hours or {}
        self.quiet_hours = QuietHours.parse(str(quiet.get("window"))) if quiet.get("enabled") else None

    def text(self, recipient: Recipient) -> str:
        """The SMS for ``recipient``; without ``link_number`` (a preview, an
        estimate) its links have a realistic length and lead nowhere."""
        numbers = self.link_number
        secret, mid = (self.secret, recipient.id) if numbers else (PREVIEW_KEY, PREVIEW_MESSAGE_ID)

        def link(url: str) -> str:
            return short_url(self.base, secret, mid, numbers(url) if numbers else 1)

        unsubscribe = short_url(self.base, secret, mid, UNSUBSCRIBE_LINK)
        context = {"customer": recipient.customer_context(), "mailing": self.mailing_ctx}
        return sms_text(self.compiled, context, link=link, unsubscribe=unsubscribe, opt_out=self.opt_out)

    def check_budget(self, recipient: Recipient | None = None) -> None:
        """See :meth:`EmailRenderer.check_budget`."""
        _check_budget(lambda context: self.compiled.render(context), self.mailing_ctx, recipient)

    def envelope(self, recipient: Recipient) -> Envelope:
        return Envelope(message_id=recipient.id, mail_from=str(self.mailing.id), rcpt=recipient.address,
                        data=self.text(recipient).encode())


def _check_budget(render: Callable[[dict[str, Any]], object], mailing: dict[str, Any],
                  recipient: Recipient | None) -> None:
    who = recipient or sample_recipient()
    try:
        render({"customer": who.customer_context(), "unsubscribe_url": "https://example.invalid/u/x",
                "mailing": mailing})
    except InvalidInput as exc:
        if exc.code == TOO_COSTLY:
            raise


def dkim_signer(tx: Transaction, from_email: str, *, secret: bytes) -> DkimSigner | None:
    """The signer of the verified sending domain of ``from_email``, or None.

    A key the secret cannot decrypt (``TIDINGS_SECRET_KEY`` changed) is logged
    as an error and the mail goes out unsigned rather than not at all; restore
    the old secret, or delete and add the domain again for a new key.
    """
    domain = from_email.rsplit("@", 1)[1].lower()
    found = tx.signing_key(domain)
    if found is None:
        return None
    selector, sealed = found
    try:
        return DkimSigner(domain, selector, decrypt_secret(secret, sealed))
    except UndecryptableSecret:
        log.error("the DKIM key of %s cannot be decrypted with the current secret key; "
                  "its mail goes out unsigned", domain)
        return None


def renderer_for(tx: Transaction, mailing: Mailing, *, secret: bytes, public_url: str,
                 link_number: Callable[[str], int] | None = None,
                 opt_out: bool = False) -> EmailRenderer | SmsRenderer:
    """The renderer of a mailing, with its template and (email) DKIM signer;
    ``link_number`` and ``opt_out`` are the SMS renderer's."""
    assert mailing.template_id is not None
    template = tx.template(mailing.template_id)
    assert template is not None  # a mailing's template cannot be deleted
    if mailing.channel is Channel.EMAIL:
        assert mailing.from_email is not None
        return EmailRenderer(mailing=mailing, template=template, secret=secret, public_url=public_url,
                             signer=dkim_signer(tx, mailing.from_email, secret=secret))
    return SmsRenderer(mailing=mailing, template=template, secret=secret, public_url=public_url,
                       link_number=link_number, opt_out=opt_out)
