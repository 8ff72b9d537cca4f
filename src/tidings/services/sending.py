"""Sending, wired: a worker and the scheduler on this context's database,
transports made from the settings.

The SMS transport of an ``smpp://`` gateway hands its delivery receipts to
:func:`tidings.services.receipts.apply_receipt` and the replies it receives
to :func:`tidings.services.replies.apply_inbound`, whose answer to HELP goes
back through the same transport.
"""

from __future__ import annotations

from tidings.domain.sms import DeliveryReceipt, InboundMessage
from tidings.engine import scheduler
from tidings.engine.foreground import Foreground as Foreground  # the web server counts its requests
from tidings.engine.worker import Worker
from tidings.services import receipts, replies
from tidings.services.context import Context
from tidings.store.sending import SqlStore
from tidings.transports.base import Envelope, Transport
from tidings.transports.factory import make_sms_transport, make_transport

#: The GIL switch interval of a process that sends (``sys.setswitchinterval``; Python's
#: default is 0.005 s). The worker's render thread is CPU-bound while its SMTP threads,
#: and in ``tidings serve`` the web requests, wait on sockets: a short interval hands the
#: GIL sooner to a thread whose reply has arrived (more messages a second, and requests
#: that do not wait 5 ms at each database round trip; see ``bench/load.py``).
WORKER_SWITCH_INTERVAL = 0.0005


def make_worker(ctx: Context, transport: Transport | None = None, *,
                foreground: Foreground | None = None) -> Worker:
    """A worker sending through ``transport`` (default: ``TIDINGS_SMTP_URL``),
    giving way to the requests of ``foreground`` (the web server it shares a
    process with)."""
    s = ctx.settings
    if transport is None:
        transport = make_transport(s.smtp_url, connections=s.smtp_connections, timeout=s.smtp_timeout)
    made: list[Transport] = []

    def answer(phone: str, text: str) -> None:
        for sms in made:
            sms.send([Envelope(message_id=0, mail_from="reply", rcpt=phone, data=text.encode())])

    def on_receipt(receipt: DeliveryReceipt) -> None:
        receipts.apply_receipt(ctx, receipt, source="smpp")

    def on_inbound(message: InboundMessage) -> None:
        replies.apply_inbound(ctx, message, reply=answer)

    def sms_transport() -> Transport | None:
        sms = make_sms_transport(s.sms_url, smtp_url=s.smtp_url, connections=s.smtp_connections,
                                 timeout=s.smtp_timeout, on_receipt=on_receipt, on_inbound=on_inbound)
        if sms is not None:
            made.append(sms)
        return sms

    # The worker waits for a database that cannot serve for as long as its lease
    # holds; the API (ctx.store) answers 503 at once instead.
    store = SqlStore(ctx.engine, wait_for=s.worker_lease)
    return Worker(store=store, settings=s, secret=ctx.secret, transport=transport,
                  sms_transport=sms_transport, clock=ctx.now, foreground=foreground)


def start_due(ctx: Context) -> int:
    """Start every scheduled mailing whose time has come (see :mod:`tidings.engine.scheduler`)."""
    return scheduler.start_due(ctx.store, ctx.policy, ctx.now)
