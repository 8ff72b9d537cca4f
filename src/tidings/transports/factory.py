"""Which transport a setting means: ``TIDINGS_SMTP_URL`` and ``TIDINGS_SMS_URL``."""

from __future__ import annotations

from tidings.errors import InvalidInput
from tidings.transports.base import Transport
from tidings.transports.outbox import OutboxTransport
from tidings.transports.smpp import InboundCallback, ReceiptCallback, SmppTransport
from tidings.transports.sms_http import HttpSmsTransport
from tidings.transports.smtp import SmtpTransport


def make_transport(url: str, *, connections: int, timeout: float = 30.0) -> Transport:
    """The email transport for a ``TIDINGS_SMTP_URL``: ``file://DIR`` writes an
    outbox folder, anything else is an SMTP server."""
    if url.startswith("file://"):
        return OutboxTransport(url.removeprefix("file://") or "outbox")
    return SmtpTransport(url, connections=connections, timeout=timeout)


def make_sms_transport(sms_url: str | None, *, smtp_url: str, connections: int,
                       timeout: float = 30.0, on_receipt: ReceiptCallback | None = None,
                       on_inbound: InboundCallback | None = None) -> Transport | None:
    """The SMS transport: the HTTP gateway or the SMPP client (``smpp://``, its
    binds and window from the URL; ``timeout`` is its answer timeout unless the
    URL sets one; receipts and replies go to ``on_receipt``/``on_inbound``) at
    ``TIDINGS_SMS_URL``; without one, the outbox folder when email goes there too;
    otherwise none (SMS cannot be sent)."""
    if sms_url:
        if sms_url.startswith(("http://", "https://")):
            return HttpSmsTransport(sms_url, connections=connections, timeout=timeout)
        if sms_url.startswith("smpp://"):
            return SmppTransport.from_url(sms_url, timeout=timeout, on_receipt=on_receipt,
                                          on_inbound=on_inbound)
        raise InvalidInput(f"Unsupported SMS gateway URL {sms_url!r}: use http(s):// or smpp://.",
                           field="TIDINGS_SMS_URL")
    if smtp_url.startswith("file://"):
        return OutboxTransport(smtp_url.removeprefix("file://") or "outbox", suffix=".sms.txt")
    return None
