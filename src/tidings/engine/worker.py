"""The sending worker: claims packages under a lease and sends them group by group.

No repeats, ever: before a group goes to the transport its messages are marked
``sending`` and committed; after the replies they become ``sent`` or ``failed``
(or back to ``queued`` if the server deferred them, or ``unknown`` if the link
broke after the body went out). A worker that dies leaves at most its group
in ``sending``; whoever takes the package over marks those ``unknown`` and
never sends them again.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import sqlalchemy as sa

from tidings.domain.mailings import Action, InterruptCode, chain_step_due
from tidings.engine import throttle
from tidings.engine.render import EmailRenderer, SmsRenderer, renderer_for
from tidings.errors import TidingsError
from tidings.services import mailings as mailing_service
from tidings.services.context import Context
from tidings.store import auth as quota_store
from tidings.store import customers as customer_store
from tidings.store import feedback as feedback_store
from tidings.store import mailings as store
from tidings.store.mailings import Package
from tidings.transports.base import Envelope, Outcome, Result, Transport
from tidings.transports.smtp import make_sms_transport, make_transport

log = logging.getLogger("tidings.worker")


class LeaseLost(Exception):
    """Another worker took the package over; stop touching it."""


@dataclass
class _Retry:
    since: float | None = None
    delay: float = 0.5
    last_error: str = ""


@dataclass
class _Group:
    rows: Sequence[Any]
    envelopes: list[Envelope]
    broken: dict[int, str]
    future: Future[list[Outcome]] | None = None


@dataclass
class Worker:
    ctx: Context
    transport: Transport | None = None
    owner: str = field(default_factory=lambda: f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}")

    def __post_init__(self) -> None:
        s = self.ctx.settings
        if self.transport is None:
            self.transport = make_transport(s.smtp_url, connections=s.smtp_connections,
                                            timeout=s.smtp_timeout)
        self._sms: Transport | None = None
        self._renderers: dict[int, EmailRenderer | SmsRenderer] = {}
        self.secret = self.ctx.secret
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sender")
        self.stop_event = threading.Event()

    # -- loop ------------------------------------------------------------------

    def run(self) -> None:
        """Work until :attr:`stop_event` is set."""
        log.info("worker %s sending through %s", self.owner,
                 self.transport.description)  # type: ignore[union-attr]
        while not self.stop_event.is_set():
            try:
                busy = self.tick()
            except Exception:  # noqa: BLE001 - the loop must survive a bad tick
                log.exception("worker tick failed")
                busy = False
            if not busy:
                self.stop_event.wait(self.ctx.settings.poll_interval)
        self.close()

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        for transport in (self.transport, self._sms):
            if transport is not None:
                transport.close()

    def transport_for(self, channel: str) -> Transport | None:
        """The email transport, or the SMS one (made on first use; None if there is none)."""
        if channel == "email":
            return self.transport
        if self._sms is None:
            s = self.ctx.settings
            self._sms = make_sms_transport(s.sms_url, smtp_url=s.smtp_url,
                                           connections=s.smtp_connections, timeout=s.smtp_timeout)
        return self._sms

    def tick(self) -> bool:
        """Start due scheduled mailings, then send one package. True if it did work."""
        started = start_due(self.ctx)
        package = self.claim()
        if package is None:
            return started > 0
        try:
            self.process(package)
        except LeaseLost:
            log.warning("lost the lease on package %s", package.id)
        return True

    def run_until_idle(self, *, max_ticks: int = 100_000) -> None:
        """Tick until there is nothing to do (for tests and ``tidings demo``)."""
        for _ in range(max_ticks):
            if not self.tick():
                return

    # -- packages ----------------------------------------------------------------

    def _lease_until(self):  # type: ignore[no-untyped-def]
        return self.ctx.now() + timedelta(seconds=self.ctx.settings.worker_lease)

    def claim(self) -> Package | None:
        """Lease the next package and reserve quota for it, in one transaction."""
        ctx = self.ctx
        now = ctx.now()
        with ctx.tx() as conn:
            package = store.claim_package(conn, owner=self.owner, now=now)
            if package is None:
                return None
            mailing = store.get(conn, package.mailing_id)
            assert mailing is not None
            channel = mailing["channel"]
            if package.taken_over:
                unknown = store.abandon_in_flight(conn, package)
                quota_store.change_balance(conn, channel, max(0, package.reserved - unknown))
                log.warning("took over package %s; %s in-flight messages marked unknown",
                            package.id, unknown)
            need = store.count_queued(conn, package)
            balance = quota_store.quota_balance(conn, channel, for_update=True)
            if balance is not None and balance < need:
                store.close_package(conn, package.id, done=False, now=now)
                interrupt(conn, mailing, InterruptCode.QUOTA_EXHAUSTED,
                          f"The {channel} package is exhausted: {balance} left, the next package "
                          f"needs {need}. Top up the quota, then resume.", now=now)
                return None
            reserved = need if balance is not None else 0
            quota_store.change_balance(conn, channel, -reserved)
            store.lease(conn, package, owner=self.owner, until=self._lease_until(), now=now,
                        reserved=reserved)
            return package

    def _renderer(self, conn: sa.Connection, mailing: dict[str, Any]) -> EmailRenderer | SmsRenderer:
        renderer = self._renderers.get(mailing["id"])
        if renderer is None:
            renderer = renderer_for(conn, mailing, secret=self.secret,
                                    public_url=self.ctx.settings.public_url)
            self._renderers[mailing["id"]] = renderer
        return renderer

    def process(self, package: Package) -> None:
        """Send every queued message of the package; a started package is finished
        even if its mailing is canceled meanwhile.

        Rendering overlaps sending: while one group is with the SMTP server the
        next is read and rendered, but it is marked in flight only after the
        replies of the first are recorded, so at most one group is ever in flight.
        """
        ctx, s = self.ctx, self.ctx.settings
        group_size = s.send_group if s.send_rate <= 0 else max(1, min(s.send_group, int(s.send_rate)))
        retry = _Retry()
        with ctx.tx() as conn:
            mailing = store.get(conn, package.mailing_id)
            assert mailing is not None
            renderer = self._renderer(conn, mailing)
        transport = self.transport_for(mailing["channel"])
        if transport is None:
            self._stop(package, mailing, InterruptCode.TECHNICAL_ERROR,
                       "No SMS gateway is configured: set TIDINGS_SMS_URL, then resume.")
            return
        in_flight: _Group | None = None
        while True:
            group = self._prepare_group(package, renderer, group_size)
            if in_flight is not None:
                assert in_flight.future is not None
                outcomes = in_flight.future.result()
                deferred = self._record(package, mailing, in_flight, outcomes)
                in_flight = None
                if self._stopped_by_guards(package, mailing, deferred, outcomes, retry):
                    return
                if deferred and group is None:
                    continue  # the deferred messages are queued again: take them
            if group is None:
                break
            self._mark_in_flight(package, group)
            group.future = self._sender.submit(self._send, transport, group.envelopes)
            in_flight = group
        now = ctx.now()
        with ctx.tx() as conn:
            store.lock(conn, mailing["id"])
            left = store.close_package(conn, package.id, done=True, now=now)
            quota_store.change_balance(conn, mailing["channel"], left)
            if store.finish_if_done(conn, mailing["id"], now=now):
                schedule_next_step(conn, mailing["id"], now=now)
                self._renderers.pop(mailing["id"], None)
            elif mailing_service.complete_cancel(conn, mailing["id"], now=now):
                self._renderers.pop(mailing["id"], None)

    def _prepare_group(self, package: Package, renderer: EmailRenderer | SmsRenderer,
                       size: int) -> _Group | None:
        """Read and render the next queued messages (not yet marked)."""
        with self.ctx.tx() as conn:
            rows = store.next_group(conn, package, size)
        if not rows:
            return None
        envelopes, broken = self._render(renderer, rows)
        return _Group(rows=rows, envelopes=envelopes, broken=broken)

    def _mark_in_flight(self, package: Package, group: _Group) -> None:
        """Committed before anything of the group is handed to the server."""
        first, last = group.rows[0].id, group.rows[-1].id
        with self.ctx.tx() as conn:
            if not store.renew(conn, package.id, owner=self.owner, until=self._lease_until()):
                raise LeaseLost
            if store.mark_in_flight(conn, package, first, last) != len(group.rows):
                raise LeaseLost

    def _send(self, transport: Transport, envelopes: Sequence[Envelope]) -> list[Outcome]:
        throttle.wait(self.ctx.engine, len(envelopes), self.ctx.settings.send_rate)
        return transport.send(envelopes) if envelopes else []

    def _render(self, renderer: EmailRenderer | SmsRenderer, rows: Sequence[Any]
                ) -> tuple[list[Envelope], dict[int, str]]:
        envelopes: list[Envelope] = []
        broken: dict[int, str] = {}
        for row in rows:
            try:
                envelopes.append(renderer.envelope(row))
            except TidingsError as exc:
                broken[row.id] = f"cannot render the template for this customer: {exc.message}"
            except Exception as exc:  # noqa: BLE001 - one customer's data must not stop the package
                broken[row.id] = f"cannot render the template for this customer: {exc}"
        return envelopes, broken

    def _record(self, package: Package, mailing: dict[str, Any], group: _Group,
                outcomes: Sequence[Outcome]) -> int:
        """Write the replies of one group; returns how many were deferred."""
        rows, envelopes, broken = group.rows, group.envelopes, group.broken
        others: list[dict[str, Any]] = [
            {"id": mid, "status": "failed", "error": err, "smtp_code": None} for mid, err in broken.items()
        ]
        bounced: list[tuple[int, str]] = []  # (customer, address) refused with 5.1.x
        customer_of = {row.id: row.customer_id for row in rows}
        sent = failed = deferred = 0
        for env, outcome in zip(envelopes, outcomes, strict=True):
            if outcome.result is Result.SENT:
                sent += 1
                continue
            status = {Result.REJECTED: "failed", Result.DEFERRED: "queued",
                      Result.UNCERTAIN: "unknown"}[outcome.result]
            others.append({"id": env.message_id, "status": status, "error": outcome.detail,
                           "smtp_code": outcome.code})
            if outcome.result is Result.REJECTED:
                failed += 1
                if outcome.hard_bounce:
                    bounced.append((customer_of[env.message_id], env.rcpt))
            elif outcome.result is Result.DEFERRED:
                deferred += 1
        now = self.ctx.now()
        with self.ctx.tx() as conn:
            store.record_results(conn, package, first_id=rows[0].id, last_id=rows[-1].id,
                                 others=others, now=now)
            store.add_counts(conn, mailing["id"], sent=sent, failed=failed)
            if sent:
                store.take_reservation(conn, package.id, sent)
            if bounced:
                customer_store.mark_bounced(conn, [customer for customer, _ in bounced], now=now)
                for _, address in bounced:
                    feedback_store.suppress(conn, address, "bounced", now=now)
        return deferred

    def _stopped_by_guards(self, package: Package, mailing: dict[str, Any], deferred: int,
                           outcomes: Sequence[Outcome], retry: _Retry) -> bool:
        """Retry with backoff, then interrupt for a technical error; interrupt for
        reputation. True when the package was released and the worker must stop."""
        ctx, s = self.ctx, self.ctx.settings
        reason: tuple[InterruptCode, str] | None = None
        if deferred:
            detail = next(o.detail for o in outcomes if o.result is Result.DEFERRED)
            now = time.monotonic()
            retry.since = retry.since or now
            retry.last_error = detail or "deferred"
            if now - retry.since >= s.smtp_retry_for:
                transport = self.transport_for(mailing["channel"])
                assert transport is not None
                reason = (InterruptCode.TECHNICAL_ERROR,
                          f"Sending through {transport.description} failed for "
                          f"{int(now - retry.since)} s: {retry.last_error}. Fix the mail server, then "
                          "resume: messages already sent will not be repeated.")
            else:
                self._sleep_renewing(package, retry.delay)
                retry.delay = min(retry.delay * 2, 30.0)
        elif outcomes:
            retry.since, retry.delay = None, 0.5
        if reason is None:
            with ctx.tx() as conn:
                reason = reputation_problem(store.guard_counts(conn, mailing["id"]), s)
        if reason is None:
            return False
        self._stop(package, mailing, *reason)
        return True

    def _stop(self, package: Package, mailing: dict[str, Any], code: InterruptCode, message: str) -> None:
        """Release the package (its quota reservation too) and interrupt the mailing."""
        now = self.ctx.now()
        with self.ctx.tx() as conn:
            store.lock(conn, mailing["id"])
            left = store.close_package(conn, package.id, done=False, now=now)
            quota_store.change_balance(conn, mailing["channel"], left)
            current = store.get(conn, mailing["id"])
            assert current is not None
            interrupt(conn, current, code, message, now=now)

    def _sleep_renewing(self, package: Package, seconds: float) -> None:
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if self.stop_event.wait(min(left, self.ctx.settings.worker_lease / 3)):
                return
            with self.ctx.tx() as conn:
                if not store.renew(conn, package.id, owner=self.owner, until=self._lease_until()):
                    raise LeaseLost


def reputation_problem(counts: dict[str, int], settings: Any) -> tuple[InterruptCode, str] | None:
    """Interrupt when refusals and bounces, or complaints, pass their limits after
    the minimum sample of messages handed to the server (the guard's window)."""
    handed = counts["sent"] + counts["failed"]
    if handed < settings.reputation_min_sample:
        return None
    bounce_rate = (counts["failed"] + counts["bounced"]) / handed
    complaint_rate = counts["complained"] / max(1, counts["sent"])
    if bounce_rate > settings.max_bounce_rate:
        return (InterruptCode.REPUTATION,
                f"{bounce_rate:.1%} of {handed} messages bounced or were refused (limit "
                f"{settings.max_bounce_rate:.1%}). Check the list's quality before an admin resumes it.")
    if complaint_rate > settings.max_complaint_rate:
        return (InterruptCode.REPUTATION,
                f"{complaint_rate:.2%} of recipients complained of spam (limit "
                f"{settings.max_complaint_rate:.2%}). Check consent before an admin resumes it.")
    return None


def interrupt(conn: sa.Connection, mailing: dict[str, Any], code: InterruptCode, message: str, *,
              now: Any) -> bool:
    """sending -> interrupted; the chain's later steps go back to Draft."""
    moved = store.move(conn, mailing["id"], from_=["sending"],
                       values={"status": "interrupted", "interrupt_code": code.value,
                               "interrupt_message": message, "cancel_requested_at": None,
                               "updated_at": now})
    if moved:
        log.warning("mailing %s interrupted (%s): %s", mailing["id"], code.value, message)
        reset_later_steps(conn, mailing, now=now)
    return moved


def reset_later_steps(conn: sa.Connection, mailing: dict[str, Any], *, now: Any) -> None:
    conn.execute(
        store.m.update()
        .where(store.m.c.chain_id == mailing["chain_id"], store.m.c.step > mailing["step"],
               store.m.c.status == "scheduled")
        .values(status="draft", send_at=None, updated_at=now)
    )


def schedule_next_step(conn: sa.Connection, mailing_id: int, *, now: Any) -> None:
    """When a step is sent, the next (draft) step is scheduled for its chain time."""
    mailing = store.get(conn, mailing_id)
    assert mailing is not None
    nxt = conn.execute(
        sa.select(store.m).where(store.m.c.chain_id == mailing["chain_id"],
                                 store.m.c.step == mailing["step"] + 1)
    ).first()
    if nxt is None or nxt.status != "draft":
        return
    send_at = chain_step_due(previous_finished_at=mailing["finished_at"] or now,
                             delay_hours=nxt.delay_hours, now=now)
    conn.execute(store.m.update().where(store.m.c.id == nxt.id)
                 .values(status="scheduled", send_at=send_at, updated_at=now))


def start_due(ctx: Context) -> int:
    """Start every scheduled mailing whose time has come, each exactly once even
    with many workers: the start is a compare-and-set on the status."""
    with ctx.tx() as conn:
        due = store.due_scheduled(conn, ctx.now())
    started = 0
    for mailing_id in due:
        try:
            with ctx.tx() as conn:
                row = store.get(conn, mailing_id, for_update=True)
                if row is None or row["status"] != "scheduled" or row["send_at"] > ctx.now():
                    continue
                mailing_service.start(ctx, conn, row, Action.START)
                started += 1
        except TidingsError as exc:
            # It cannot start (e.g. its domain lost verification): back to Draft, saying why.
            with ctx.tx() as conn:
                row = store.get(conn, mailing_id)
                if row is not None and row["status"] == "scheduled":
                    store.move(conn, mailing_id, from_=["scheduled"],
                               values={"status": "draft", "send_at": None,
                                       "interrupt_code": "technical_error",
                                       "interrupt_message": f"Could not start at its time: {exc.message}",
                                       "updated_at": ctx.now()})
    return started
