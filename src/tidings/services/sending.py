"""Sending, wired: a worker and the scheduler on this context's database,
transports made from the settings."""

from __future__ import annotations

from tidings.engine import scheduler
from tidings.engine.worker import Worker
from tidings.services.context import Context
from tidings.transports.base import Transport
from tidings.transports.factory import make_sms_transport, make_transport


def make_worker(ctx: Context, transport: Transport | None = None) -> Worker:
    """A worker sending through ``transport`` (default: ``TIDINGS_SMTP_URL``)."""
    s = ctx.settings
    if transport is None:
        transport = make_transport(s.smtp_url, connections=s.smtp_connections, timeout=s.smtp_timeout)

    def sms_transport() -> Transport | None:
        return make_sms_transport(s.sms_url, smtp_url=s.smtp_url, connections=s.smtp_connections,
                                  timeout=s.smtp_timeout)

    return Worker(store=ctx.store, settings=s, secret=ctx.secret, transport=transport,
                  sms_transport=sms_transport, clock=ctx.now)


def start_due(ctx: Context) -> int:
    """Start every scheduled mailing whose time has come (see :mod:`tidings.engine.scheduler`)."""
    return scheduler.start_due(ctx.store, ctx.policy, ctx.now)
