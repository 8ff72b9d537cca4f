"""Per-mailing message assembly: compile once, fill in only the personal parts.

Email from a verified sending domain is DKIM-signed: :func:`renderer_for`
decrypts the domain's key once per renderer (one per mailing and worker) and
every envelope is signed with it.
"""

from __future__ import annotations

import logging
from typing import Any

import sqlalchemy as sa

from tidings.domain.templates import compile_email, compile_sms
from tidings.domain.tracking import sign_click, sign_message_token
from tidings.store import domains as domain_store
from tidings.store.tables import templates
from tidings.transports.base import Envelope
from tidings.transports.dkim import DkimSigner, UndecryptableSecret, decrypt_secret
from tidings.transports.mime import MessageFactory

log = logging.getLogger("tidings.worker")


def customer_context(row: Any) -> dict[str, Any]:
    """What templates see as ``customer``."""
    return {
        "id": row.customer_id,
        "external_id": row.external_id,
        "email": row.email,
        "phone": row.phone,
        "first_name": row.first_name or "",
        "last_name": row.last_name or "",
        "attributes": row.attributes or {},
    }


class EmailRenderer:
    """Builds the envelope of each message of one email mailing.

    The template is compiled and the MIME skeleton precomputed once; per message
    only the template is rendered, links are signed and the parts are joined.
    With a ``signer`` every message is DKIM-signed.
    """

    def __init__(self, *, mailing: dict[str, Any], template: dict[str, Any], secret: bytes,
                 public_url: str, signer: DkimSigner | None = None) -> None:
        self.mailing = mailing
        self.signer = signer
        self.secret = secret
        self.base = public_url.rstrip("/")
        self.domain = mailing["from_email"].rsplit("@", 1)[1]
        self.compiled = compile_email(subject=template["subject"] or "", html=template["html"] or "",
                                      text=template["text"])
        self.factory = MessageFactory(
            from_email=mailing["from_email"], from_name=mailing["from_name"],
            reply_to=mailing["reply_to"], mailing_id=mailing["id"],
        )
        self.mailing_ctx = {"id": mailing["id"], "name": mailing["name"]}

    def message_id_header(self, message_id: int) -> str:
        return f"<tidings.{self.mailing['id']}.{message_id}@{self.domain}>"

    def unsubscribe_url(self, message_id: int) -> str:
        return f"{self.base}/u/{sign_message_token(self.secret, message_id, 'unsub')}"

    def mail_from(self, message_id: int) -> str:
        return f"bounces+{sign_message_token(self.secret, message_id, 'bounce')}@{self.domain}"

    def envelope(self, row: Any) -> Envelope:
        mid = row.id
        unsubscribe = self.unsubscribe_url(mid)
        secret, base = self.secret, self.base
        rendered = self.compiled.render(
            {"customer": customer_context(row), "unsubscribe_url": unsubscribe,
             "mailing": self.mailing_ctx},
            link=lambda url: f"{base}/t/c/{sign_click(secret, mid, url)}",
            open_pixel_url=f"{base}/t/o/{sign_message_token(secret, mid, 'open')}",
        )
        data = self.factory.build(
            message_id_header=self.message_id_header(mid), to=row.address,
            subject=rendered.subject, html=rendered.html, text=rendered.text,
            list_unsubscribe=unsubscribe,
        )
        if self.signer is not None:
            data = self.signer.sign(data)
        return Envelope(message_id=mid, mail_from=self.mail_from(mid), rcpt=row.address, data=data)


class SmsRenderer:
    """SMS text per message; links are left as they are."""

    def __init__(self, *, mailing: dict[str, Any], template: dict[str, Any], secret: bytes,
                 public_url: str) -> None:
        self.mailing = mailing
        self.secret = secret
        self.base = public_url.rstrip("/")
        self.compiled = compile_sms(text=template["text"] or "")
        self.mailing_ctx = {"id": mailing["id"], "name": mailing["name"]}

    def envelope(self, row: Any) -> Envelope:
        unsubscribe = f"{self.base}/u/{sign_message_token(self.secret, row.id, 'unsub')}"
        text = self.compiled.render({"customer": customer_context(row), "unsubscribe_url": unsubscribe,
                                     "mailing": self.mailing_ctx})
        return Envelope(message_id=row.id, mail_from=str(self.mailing["id"]), rcpt=row.address,
                        data=text.encode())


def dkim_signer(conn: sa.Connection, from_email: str, *, secret: bytes) -> DkimSigner | None:
    """The signer of the verified sending domain of ``from_email``, or None.

    A key the secret cannot decrypt (``TIDINGS_SECRET_KEY`` changed) is logged
    as an error and the mail goes out unsigned rather than not at all; restore
    the old secret, or delete and add the domain again for a new key.
    """
    domain = from_email.rsplit("@", 1)[1].lower()
    found = domain_store.signing_key(conn, domain)
    if found is None:
        return None
    selector, sealed = found
    try:
        return DkimSigner(domain, selector, decrypt_secret(secret, sealed))
    except UndecryptableSecret:
        log.error("the DKIM key of %s cannot be decrypted with the current secret key; "
                  "its mail goes out unsigned", domain)
        return None


def renderer_for(conn: sa.Connection, mailing: dict[str, Any], *, secret: bytes,
                 public_url: str) -> EmailRenderer | SmsRenderer:
    template = conn.execute(sa.select(templates).where(templates.c.id == mailing["template_id"])).one()
    if mailing["channel"] == "email":
        return EmailRenderer(mailing=mailing, template=dict(template._mapping), secret=secret,
                             public_url=public_url,
                             signer=dkim_signer(conn, mailing["from_email"], secret=secret))
    return SmsRenderer(mailing=mailing, template=dict(template._mapping), secret=secret,
                       public_url=public_url)
