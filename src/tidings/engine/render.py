"""Per-mailing message assembly: compile once, fill in only the personal parts."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.templates import compile_email, compile_sms
from tidings.domain.tracking import sign_click, sign_message_token
from tidings.store.tables import templates
from tidings.transports.base import Envelope
from tidings.transports.mime import MessageFactory


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
    """

    def __init__(self, *, mailing: dict[str, Any], template: dict[str, Any], secret: bytes,
                 public_url: str) -> None:
        self.mailing = mailing
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


def renderer_for(conn: sa.Connection, mailing: dict[str, Any], *, secret: bytes,
                 public_url: str) -> EmailRenderer | SmsRenderer:
    template = conn.execute(sa.select(templates).where(templates.c.id == mailing["template_id"])).one()
    cls = EmailRenderer if mailing["channel"] == "email" else SmsRenderer
    return cls(mailing=mailing, template=dict(template._mapping), secret=secret, public_url=public_url)
