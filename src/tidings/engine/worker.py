"""The sending worker: claims packages under a lease and sends them group by group.

No repeats, ever: before a chunk of messages goes to the transport its
messages are marked ``sending`` and committed; as soon as its replies are in
they become ``sent`` or ``failed`` (or back to ``queued`` if the server
deferred them, or ``unknown`` if the link broke after the body went out). Each
SMTP connection takes ``TIDINGS_SEND_CHUNK`` messages at a time and has the
next chunk marked while one goes out, so a worker that dies leaves at most
connections x 2 x chunk messages in ``sending`` (an SMS worker: its group);
whoever takes the package over marks those ``unknown`` and never sends them
again (unless a manager asks: "send to the N unknown"). A worker asked to stop
(:attr:`Worker.stop_event`, SIGTERM) records what is on the wire and hands
its package back.

The worker's rules, all through the :class:`~tidings.engine.ports.Store` port:

- **lease**: a package is claimed under a lease renewed with each group; a
  worker that finds its lease taken (:class:`LeaseLost`) stops touching it;
- **quota**: claiming a package reserves its queued messages from the
  channel's balance, or interrupts the mailing with ``quota_exhausted`` when
  the balance is short; what was not sent goes back when it is closed. SMS
  are charged per part: each group reserves the parts of its rendered texts
  in the transaction that marks it in flight (as many messages as the balance
  pays for, in order), is charged the parts the SMSC accepted, and gives the
  rest back; when not one more message is paid for, ``quota_exhausted``;
- **backoff**: deferred messages are retried with doubling pauses (0.5 s up to
  30 s) for ``TIDINGS_SMTP_RETRY_FOR`` seconds, then ``technical_error``;
- **guard**: after each group the reputation verdict may interrupt it;
- **cancel**: a started package is finished even if its mailing is canceled;
  closing the last one completes the cancel;
- **quiet hours** (SMS): a recipient for whom it is quiet now
  (:func:`tidings.domain.quiet_hours.wait_until`) is held until their
  morning; once only held messages are left the package goes back, not to be
  claimed before the first of them may go, so no worker waits or spins on it;
- **parts** (SMS): the SMSC's id of every accepted part is kept with the
  results, for delivery receipts.
- **database outage**: when the store cannot serve
  (:class:`~tidings.errors.StoreUnavailable`: unreachable, restarting, busy,
  disk full) the loop waits with doubling pauses (0.5 s up to 10 s) and
  carries on when it answers again (the store logs the outage once, and once
  its end; a transaction that could not begin it tries again itself, for
  as long as the lease holds). A package
  it held keeps its lease rules: if the lease ran out meanwhile, whoever claims
  it (this worker too) takes it over and marks its in-flight group
  ``unknown``, never sent again;
- **template**: each render is bounded by the template's rendering budget; a
  message whose render fails (over the budget for this customer's data, or
  any other error) fails alone, and a template that cannot be compiled or
  goes over the budget for the sample customer (so for everyone) interrupts
  the mailing with ``technical_error`` naming the problem before anything of
  the package is sent.
"""

from __future__ import annotations

import logging
import os
import queue
import socket
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from functools import partial

from tidings.config import Settings
from tidings.domain.mailings import Channel, InterruptCode, Mailing
from tidings.domain.messages import Package, quota_message
from tidings.domain.reputation import verdict
from tidings.engine import lifecycle, scheduler
from tidings.engine.foreground import Foreground
from tidings.engine.ports import LeaseLost, Store, Transaction
from tidings.engine.render import EmailRenderer, SmsRenderer, renderer_for
from tidings.engine.sms_sending import SmsSending
from tidings.engine.window import (
    GATHER,
    Chunk,
    Group,
    Tally,
    Window,
    count_replies,
    cut_chunks,
    render_each,
    stream_plain,
)
from tidings.errors import InvalidInput, StoreUnavailable, TidingsError
from tidings.transports.base import Envelope, Outcome, Result, Transport

log = logging.getLogger("tidings.worker")

#: Where the pause between retries of deferred messages starts, and its ceiling.
FIRST_RETRY_DELAY = 0.5
MAX_RETRY_DELAY = 30.0
#: The pauses between attempts while the database cannot serve.
MAX_OUTAGE_DELAY = 10.0


@dataclass
class _Retry:
    since: float | None = None
    delay: float = FIRST_RETRY_DELAY
    last_error: str = ""


def _owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


@dataclass
class Worker(SmsSending):
    """Sends packages from ``store`` through ``transport`` (email) and the SMS
    transport that ``sms_transport`` makes on first use (None: no gateway)."""

    store: Store
    settings: Settings
    secret: bytes
    transport: Transport
    sms_transport: Callable[[], Transport | None] = lambda: None
    clock: Callable[[], datetime] = field(default=lambda: datetime.now().astimezone())
    owner: str = field(default_factory=_owner)
    #: How the worker waits (tests replace it to run without pausing).
    sleep: Callable[[float], None] = time.sleep
    monotonic: Callable[[], float] = time.monotonic
    #: The requests of the web server this worker shares a process with (``tidings
    #: serve``): it gives way to them between two messages it renders.
    foreground: Foreground | None = None

    def __post_init__(self) -> None:
        self._sms: Transport | None = None
        self._renderers: dict[int, EmailRenderer | SmsRenderer] = {}
        self._sender = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sender")
        self._streamer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stream")
        self._renewed = float("-inf")  # time.monotonic() of the window's last lease renewal
        self.stop_event = threading.Event()
        self.policy = lifecycle.SendingPolicy.from_settings(self.settings)

    # -- loop ------------------------------------------------------------------

    def run(self) -> None:
        """Work until :attr:`stop_event` is set."""
        log.info("worker %s sending through %s", self.owner, self.transport.description)
        self._open_sms()
        pause = FIRST_RETRY_DELAY
        while not self.stop_event.is_set():
            try:
                busy = self.tick()
            except StoreUnavailable as exc:
                # The store logs the outage once (it sees every attempt); here only the pause.
                log.debug("the database cannot serve (%s); next attempt in %.1f s", exc.code, pause)
                self.stop_event.wait(pause)
                pause = min(pause * 2, MAX_OUTAGE_DELAY)
                continue
            except Exception:  # noqa: BLE001 - the loop must survive a bad tick
                log.exception("worker tick failed")
                busy = False
            pause = FIRST_RETRY_DELAY
            if not busy:
                self.stop_event.wait(self.settings.poll_interval)
        self.close()

    def close(self) -> None:
        self._sender.shutdown(wait=True)
        self._streamer.shutdown(wait=True)
        for transport in (self.transport, self._sms):
            if transport is not None:
                transport.close()

    def transport_for(self, channel: str) -> Transport | None:
        """The email transport, or the SMS one (made on first use; None if there is none)."""
        if channel == "email":
            return self.transport
        if self._sms is None:
            self._sms = self.sms_transport()
        return self._sms

    def _open_sms(self) -> None:
        """Bind to an SMPP gateway at once, so that receipts and replies come in
        between mailings too (other transports connect when they send)."""
        if (self.settings.sms_url or "").startswith("smpp://"):
            try:
                start = getattr(self.transport_for("sms"), "start", None)
                if start is not None:
                    start()
            except TidingsError as exc:
                log.error("cannot use the SMS gateway: %s", exc.message)

    def tick(self) -> bool:
        """Start due scheduled mailings, then send one package. True if it did work."""
        started = scheduler.start_due(self.store, self.policy, self.clock)
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

    def _lease_until(self) -> datetime:
        return self.clock() + timedelta(seconds=self.settings.worker_lease)

    def claim(self) -> Package | None:
        """Lease the next package and reserve quota for it, in one transaction."""
        now = self.clock()
        with self.store.transaction() as tx:
            package = tx.claim_package(owner=self.owner, now=now)
            if package is None:
                return None
            mailing = tx.mailing(package.mailing_id)
            assert mailing is not None
            channel = mailing.channel
            sms_package = channel is Channel.SMS
            if package.taken_over:
                unknown = tx.abandon_in_flight(package)
                # An SMS package holds only the parts of its group in flight: all unknown now.
                tx.change_quota(channel, 0 if sms_package else max(0, package.reserved - unknown))
                log.warning("took over package %s; %s in-flight messages marked unknown",
                            package.id, unknown)
            need = tx.count_queued(package)
            if sms_package:
                need = min(need, 1)  # its groups reserve their parts; one is the least
            balance = tx.quota_balance(channel, lock=True)
            if balance is not None and balance < need:
                tx.close_package(package.id, done=False, now=now)
                lifecycle.interrupt(tx, mailing.id, InterruptCode.QUOTA_EXHAUSTED,
                                    quota_message(channel, balance, need), now=now)
                return None
            reserved = need if balance is not None and not sms_package else 0
            tx.change_quota(channel, -reserved)
            tx.lease_package(package, owner=self.owner, until=self._lease_until(), now=now,
                             reserved=reserved)
            return replace(package, reserved=reserved)

    def _renderer(self, mailing: Mailing) -> EmailRenderer | SmsRenderer:
        renderer = self._renderers.get(mailing.id)
        if renderer is None:
            with self.store.transaction() as tx:
                renderer = renderer_for(tx, mailing, secret=self.secret,
                                        public_url=self.settings.public_url,
                                        link_number=self._link_numbers(mailing.id),
                                        opt_out=self.settings.sms_opt_out_link)
            renderer.check_budget()
            self._renderers[mailing.id] = renderer
        return renderer

    def _link_numbers(self, mailing_id: int) -> Callable[[str], int]:
        """The numbers of a mailing's short links, each asked of the store once."""
        known: dict[str, int] = {}

        def number(url: str) -> int:
            if url not in known:
                with self.store.transaction() as tx:
                    known[url] = tx.sms_link(mailing_id, url)
            return known[url]

        return number

    def process(self, package: Package) -> None:
        """Send every queued message of the package; a started package is finished
        even if its mailing is canceled meanwhile, and handed back (released for
        another worker) when the worker is asked to stop.

        Email goes group by group, each group chunk by chunk
        (:meth:`_send_window`): a connection's chunk is marked in flight just
        before it goes out and recorded as soon as its replies are in. While a
        group is out the next one is read and rendered.
        """
        s = self.settings
        group_size = s.send_group if s.send_rate <= 0 else max(1, min(s.send_group, int(s.send_rate)))
        with self.store.transaction() as tx:
            mailing = tx.mailing(package.mailing_id)
        assert mailing is not None
        try:
            renderer = self._renderer(mailing)
        except InvalidInput as exc:  # the template is broken for everyone
            self._stop(package, mailing, InterruptCode.TECHNICAL_ERROR,
                       f"The template cannot be sent: {exc.message} Fix the template, then resume.")
            return
        transport = self.transport_for(mailing.channel)
        if transport is None:
            self._stop(package, mailing, InterruptCode.TECHNICAL_ERROR,
                       "No SMS gateway is configured: set TIDINGS_SMS_URL, then resume.")
            return
        if isinstance(renderer, SmsRenderer):
            self._process_sms(package, mailing, renderer, transport, group_size)
        else:
            self._process_email(package, mailing, renderer, transport, group_size)

    def _process_email(self, package: Package, mailing: Mailing, renderer: EmailRenderer,
                       transport: Transport, group_size: int) -> None:
        retry = _Retry()
        again = False  # messages were deferred (queued again) behind the group being read
        group = self._prepare_group(package, renderer, group_size)
        while group is not None:
            if self.stop_event.is_set():
                self._hand_back(package, mailing)
                return
            window = self._sender.submit(self._send_window, package, mailing, transport, group)
            try:
                nxt = self._prepare_group(package, renderer, group_size, after=group.recipients[-1].id)
            except BaseException:
                wait_for([window])
                raise
            outcomes, deferred, complete = window.result()
            again = again or deferred > 0
            if self.stop_event.is_set() and not (complete and nxt is None and not again):
                self._hand_back(package, mailing)
                return
            if self._stopped_by_guards(package, mailing, transport, deferred, outcomes, retry):
                return
            if nxt is None and again:
                again = False
                nxt = self._prepare_group(package, renderer, group_size)
            group = nxt
        self._close(package, mailing)

    def _process_sms(self, package: Package, mailing: Mailing, renderer: SmsRenderer,
                     transport: Transport, group_size: int) -> None:
        """Group by group: each group's parts are reserved and it is marked in
        flight as a whole; at most one group is in flight."""
        retry = _Retry()
        in_flight: Group | None = None
        while True:
            group = self._prepare_sms_group(package, renderer, group_size)
            if in_flight is not None:
                assert in_flight.future is not None
                outcomes = in_flight.future.result()
                deferred = self._record(package, mailing, in_flight, outcomes)
                in_flight = None
                if self._stopped_by_guards(package, mailing, transport, deferred, outcomes, retry):
                    return
                if deferred and group is None:
                    continue  # the deferred messages are queued again: take them
            if group is None:
                break
            if self.stop_event.is_set():
                self._hand_back(package, mailing)
                return
            paid = self._mark_sms_in_flight(package, group)
            if paid is None:
                self._stop(package, mailing, InterruptCode.QUOTA_EXHAUSTED, self._sms_short(group))
                return
            paid.future = self._sender.submit(self._send, transport, paid.envelopes)
            in_flight = paid
        self._close(package, mailing)

    def _hand_back(self, package: Package, mailing: Mailing) -> None:
        """Asked to stop (SIGTERM): what was on the wire is recorded; the package
        goes back to pending with its unused reservation, for another worker to
        claim at once."""
        now = self.clock()
        with self.store.transaction() as tx:
            tx.mailing(mailing.id, lock=True)
            tx.change_quota(mailing.channel, tx.close_package(package.id, done=False, now=now))
            lifecycle.complete_cancel(tx, mailing.id, now=now)
        log.info("stopping: package %s of mailing %s handed back", package.id, mailing.id)

    # -- the window: only what is on the wire is in flight ------------------------------

    def _send_window(self, package: Package, mailing: Mailing, transport: Transport,
                     group: Group) -> tuple[list[Outcome], int, bool]:
        """Send a group chunk by chunk (on the sender thread). Each connection of
        a :class:`~tidings.transports.base.StreamingTransport` takes
        ``TIDINGS_SEND_CHUNK`` messages at a time (another transport takes the
        group as one chunk); a chunk is marked in flight (with the lease
        renewed) just before it goes out and recorded as soon as its replies
        are in, several in one commit. Returns the outcomes in order, how many
        were deferred, and whether all of the group went (False when the
        worker was asked to stop)."""
        self._wait_for_send_slot(len(group.envelopes))
        stream = getattr(transport, "stream", None)
        size = self.settings.send_chunk if stream is not None else len(group.recipients)
        window = Window(cut_chunks(group, size), self.stop_event)
        if stream is None:
            stream = partial(stream_plain, transport)

        def run() -> None:
            try:
                stream(window.take, window.done)
            finally:
                window.requests.put(Window.END)

        streaming = self._streamer.submit(run)
        outcomes: dict[int, Outcome] = {}
        guard = Tally()  # replies written whose guard counts are not yet (once a group)
        deferred = 0
        lost = False
        failed: BaseException | None = None
        ended = False
        while not ended:
            batch = [window.requests.get()]
            if batch[0] is not Window.END:
                # A connection asks for its next chunk while one is on the wire, so a
                # moment's wait costs it nothing and lets more requests share the commit.
                time.sleep(GATHER)
            while True:
                try:
                    batch.append(window.requests.get_nowait())
                except queue.Empty:
                    break
            ended = any(r is Window.END for r in batch)
            marks = [r for r in batch if isinstance(r, Chunk)]
            replies = [r for r in batch if isinstance(r, tuple)]
            for chunk, chunk_outcomes in replies:
                for env, outcome in zip(chunk.envelopes, chunk_outcomes, strict=True):
                    outcomes[env.message_id] = outcome
                    deferred += outcome.result is Result.DEFERRED
            if failed is None:
                try:
                    held = self._write_window(package, mailing, [] if lost else marks, replies,
                                              guard, last=ended)
                    lost = lost or not held
                except BaseException as exc:  # noqa: BLE001 - the connections must be let go first
                    failed = exc
            for chunk in marks:
                chunk.marked = failed is None and not lost
                chunk.ready.set()
            if lost or failed is not None:
                window.close()
        streaming.result()
        if failed is not None:
            raise failed
        if lost:
            raise LeaseLost
        ordered = [outcomes[e.message_id] for e in group.envelopes if e.message_id in outcomes]
        return ordered, deferred, not window.chunks

    def _write_window(self, package: Package, mailing: Mailing, marks: Sequence[Chunk],
                      replies: Sequence[tuple[Chunk, list[Outcome]]], guard: Tally, *,
                      last: bool) -> bool:
        """One commit: the replies that came in, then the chunks about to go out
        marked in flight (a chunk with nothing to send is failed at once).
        False when the lease is lost (the replies are written all the same).

        The reputation guard's counts of the replies are added up in ``guard``
        and written with the group's ``last`` commit (the guard reads them after
        each group): one statement a group instead of one a commit."""
        now = self.clock()
        total, sent = Tally(), []
        for chunk, chunk_outcomes in replies:
            tally = count_replies(chunk, chunk_outcomes)
            sent += [env.message_id for env, outcome in zip(chunk.envelopes, chunk_outcomes, strict=True)
                     if outcome.result is Result.SENT]
            total.failures += tally.failures
            total.sent, total.failed = total.sent + tally.sent, total.failed + tally.failed
            total.bounced += tally.bounced
        guard.sent, guard.failed = guard.sent + total.sent, guard.failed + total.failed
        with self.store.transaction() as tx:
            if replies:
                tx.record_sent(package, sent=sent, failures=total.failures, now=now)
                self._write_counts(tx, package, mailing, total, now=now, guard=False)
            if last and (guard.sent or guard.failed):
                tx.add_guard_counts(mailing.id, sent=guard.sent, failed=guard.failed)
                guard.sent = guard.failed = 0
            if not marks:
                return True
            # Marking needs the messages queued, so two workers never mark the same one;
            # the lease is renewed (and its loss found) every second or so.
            renew = time.monotonic()
            if renew - self._renewed >= min(1.0, self.settings.worker_lease / 10):
                if not tx.renew_lease(package.id, owner=self.owner, until=self._lease_until()):
                    return False
                self._renewed = renew
            ids = [r.id for chunk in marks for r in chunk.recipients]
            if tx.mark_ids_in_flight(package, ids) != len(ids):
                raise LeaseLost
            for chunk in marks:
                if not chunk.envelopes:  # nothing of it could be rendered: it fails at once
                    self._write(tx, package, mailing, chunk, count_replies(chunk, []), now=now)
        return True

    def _write(self, tx: Transaction, package: Package, mailing: Mailing, part: Group | Chunk,
               tally: Tally, *, now: datetime) -> None:
        tx.record_results(package, first_id=part.recipients[0].id, last_id=part.recipients[-1].id,
                          failures=tally.failures, now=now)
        self._write_counts(tx, package, mailing, tally, now=now)

    def _write_counts(self, tx: Transaction, package: Package, mailing: Mailing, tally: Tally, *,
                      now: datetime, guard: bool = True) -> None:
        """The guard's counts (unless ``guard`` is False), the reservation used,
        and the hard bounces of ``tally``."""
        if guard and (tally.sent or tally.failed):
            tx.add_guard_counts(mailing.id, sent=tally.sent, failed=tally.failed)
        if mailing.channel is not Channel.SMS and tally.sent and package.reserved:
            tx.take_reservation(package.id, tally.sent)
        for customer_id, address in tally.bounced:
            if customer_id is not None:
                tx.hard_bounce(customer_id, address, now=now)

    def _close(self, package: Package, mailing: Mailing) -> None:
        """The package is out: give back the unused reservation, then the mailing
        is Sent when nothing is left, or Canceled when it was being canceled and
        this was its last package in flight."""
        if self._held_back(package, mailing):
            return
        now = self.clock()
        with self.store.transaction() as tx:
            tx.mailing(mailing.id, lock=True)
            left = tx.close_package(package.id, done=True, now=now)
            tx.change_quota(mailing.channel, left)
            if lifecycle.finish(tx, mailing.id, now=now) or \
                    lifecycle.complete_cancel(tx, mailing.id, now=now):
                self._renderers.pop(mailing.id, None)

    def _prepare_group(self, package: Package, renderer: EmailRenderer, size: int, *,
                       after: int = 0) -> Group | None:
        """Read and render the next queued messages after id ``after`` (not yet marked)."""
        with self.store.transaction() as tx:
            recipients = tx.next_group(package, size, after=after)
        if not recipients:
            return None
        envelopes, broken = render_each(renderer, recipients, self.foreground)
        return Group(recipients=recipients, envelopes=envelopes, broken=broken)

    def _send(self, transport: Transport, envelopes: Sequence[Envelope]) -> list[Outcome]:
        self._wait_for_send_slot(len(envelopes))
        return transport.send(envelopes) if envelopes else []

    def _wait_for_send_slot(self, count: int) -> None:
        """Under ``TIDINGS_SEND_RATE``, wait until ``count`` messages may go."""
        if self.settings.send_rate > 0 and count:
            wait = self.store.take_send_slot(count, self.settings.send_rate)
            if wait > 0:
                self.sleep(wait)

    def _record(self, package: Package, mailing: Mailing, group: Group,
                outcomes: Sequence[Outcome]) -> int:
        """Write the replies of one SMS group; returns how many were deferred."""
        tally = count_replies(group, outcomes)
        now = self.clock()
        with self.store.transaction() as tx:
            self._write(tx, package, mailing, group, tally, now=now)
            self._record_sms(tx, package, group, outcomes, now=now)
        return tally.deferred

    def _stopped_by_guards(self, package: Package, mailing: Mailing, transport: Transport,
                           deferred: int, outcomes: Sequence[Outcome], retry: _Retry) -> bool:
        """Retry with backoff, then interrupt for a technical error; interrupt for
        reputation. True when the package was released and the worker must stop."""
        s = self.settings
        reason: tuple[InterruptCode, str] | None = None
        if deferred:
            first = next(o for o in outcomes if o.result is Result.DEFERRED)
            now = self.monotonic()
            retry.since = retry.since or now
            retry.last_error = first.detail or "deferred"
            if now - retry.since >= s.smtp_retry_for:
                reason = (InterruptCode.TECHNICAL_ERROR, first.interruption or
                          f"Sending through {transport.description} failed for "
                          f"{int(now - retry.since)} s: {retry.last_error}. Fix the mail server, then "
                          "resume: messages already sent will not be repeated.")
            else:
                self._sleep_renewing(package, retry.delay)
                retry.delay = min(retry.delay * 2, MAX_RETRY_DELAY)
        elif outcomes:
            retry.since, retry.delay = None, FIRST_RETRY_DELAY
        if reason is None:
            with self.store.transaction() as tx:
                why = verdict(tx.guard_counts(mailing.id), s.reputation_limits)
            if why is not None:
                reason = (InterruptCode.REPUTATION, why)
        if reason is None:
            return False
        self._stop(package, mailing, *reason)
        return True

    def _stop(self, package: Package, mailing: Mailing, code: InterruptCode, message: str) -> None:
        """Release the package (its quota reservation too) and interrupt the mailing."""
        self._renderers.pop(mailing.id, None)  # resumed, it renders the template as it is then
        now = self.clock()
        with self.store.transaction() as tx:
            tx.mailing(mailing.id, lock=True)
            left = tx.close_package(package.id, done=False, now=now)
            tx.change_quota(mailing.channel, left)
            lifecycle.interrupt(tx, mailing.id, code, message, now=now)

    def _sleep_renewing(self, package: Package, seconds: float) -> None:
        end = self.monotonic() + seconds
        while (left := end - self.monotonic()) > 0:
            step = min(left, self.settings.worker_lease / 3)
            if self.sleep is time.sleep:
                if self.stop_event.wait(step):
                    return
            else:
                self.sleep(step)
            with self.store.transaction() as tx:
                if not tx.renew_lease(package.id, owner=self.owner, until=self._lease_until()):
                    raise LeaseLost
