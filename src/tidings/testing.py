"""In-memory twins for fast tests of the engine's rules, shipped with Tidings.

:class:`InMemoryStore` implements the engine's storage port
(:mod:`tidings.engine.ports`) with plain Python objects and the same meaning
as ``tidings.store.sending.SqlStore``: a transaction that raises leaves
nothing behind (the state is restored), claims follow the same order and
rules, and counts are kept the same way. :class:`RecordingTransport` is a
transport that records every envelope and answers as it is told.

    store = InMemoryStore()
    customer = store.add_customer(email="ann@example.org")
    mailing = store.add_mailing(segment_rules={}, template=Template(...))
    transport = RecordingTransport()
    worker = Worker(store=store, settings=Settings(...), secret=b"k", transport=transport,
                    clock=clock)
    store.start(mailing, now=clock())   # Send now
    worker.run_until_idle()

The twin is for the engine's rules (leases, quota, backoff, guard, cancel,
chains); the SQL itself is tested against SQLite and PostgreSQL.
"""

from __future__ import annotations

import copy
import itertools
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from tidings.domain.customers import CustomerStatus
from tidings.domain.mailings import Action, Channel, Mailing, MailingStatus, Move
from tidings.domain.messages import AcceptedPart, Failure, MessageStatus, Package, PackageStatus, Recipient
from tidings.domain.phones import is_e164
from tidings.domain.reputation import Counts
from tidings.domain.segments import evaluate, parse_rules
from tidings.domain.templates import Template
from tidings.engine import lifecycle
from tidings.transports.base import SENT, Done, Envelope, Outcome, Take

M, P = MessageStatus, PackageStatus


@dataclass
class MessageRow:
    id: int
    mailing_id: int
    customer_id: int
    address: str | None
    status: MessageStatus
    skip_reason: str | None = None
    error: str | None = None
    smtp_code: int | None = None
    sent_at: datetime | None = None
    opened_at: datetime | None = None
    clicked_at: datetime | None = None
    bounce: str | None = None
    not_before: datetime | None = None


@dataclass
class PackageRow:
    id: int
    mailing_id: int
    seq: int
    first_message_id: int
    last_message_id: int
    size: int
    status: PackageStatus = P.PENDING
    lease_owner: str | None = None
    lease_until: datetime | None = None
    reserved: int = 0
    counts: dict[str, int] | None = None
    not_before: datetime | None = None


@dataclass
class _State:
    mailings: dict[int, Mailing] = field(default_factory=dict)
    segments: dict[int, Any] = field(default_factory=dict)
    customers: dict[int, dict[str, Any]] = field(default_factory=dict)
    suppressed: dict[str, str] = field(default_factory=dict)
    orders: list[tuple[int, datetime]] = field(default_factory=list)
    messages: dict[int, MessageRow] = field(default_factory=dict)
    packages: dict[int, PackageRow] = field(default_factory=dict)
    guard: dict[int, Counts] = field(default_factory=dict)
    quotas: dict[str, int | None] = field(default_factory=dict)
    templates: dict[int, Template] = field(default_factory=dict)
    domains: dict[str, bool] = field(default_factory=dict)
    parts: list[AcceptedPart] = field(default_factory=list)
    links: dict[tuple[int, str], int] = field(default_factory=dict)
    send_clock: float = 0.0


class InMemoryStore:
    """The storage port in memory. It is its own :class:`Transaction`: one
    transaction at a time, as SQLite serialises writers."""

    def __init__(self) -> None:
        self.state = _State()
        self._ids = itertools.count(1)
        self._lock = threading.RLock()  # one transaction at a time, like SQLite's writers
        #: Seconds returned by :meth:`take_send_slot` (the test sets the rate's effect).
        self.send_slots: list[tuple[int, float]] = []

    # -- set-up helpers for tests ---------------------------------------------------------

    def add_customer(self, *, email: str | None = None, phone: str | None = None,
                     first_name: str | None = None, email_status: str = "subscribed",
                     sms_status: str = "subscribed", **attributes: Any) -> int:
        cid = next(self._ids)
        self.state.customers[cid] = {
            "id": cid, "external_id": None, "email": email, "phone": phone,
            "first_name": first_name, "last_name": None, "attributes": attributes,
            "email_status": email_status, "sms_status": sms_status,
        }
        return cid

    def add_template(self, *, subject: str = "Hello", html: str = "<p>Hi {{ customer.first_name }}</p>",
                     text: str | None = None, channel: str = "email") -> int:
        tid = next(self._ids)
        self.state.templates[tid] = Template(id=tid, name=f"t{tid}", channel=channel, subject=subject,
                                             html=html, text=text)
        return tid

    def add_mailing(self, *, segment_rules: Any = None, template_id: int | None = None,
                    channel: Channel = Channel.EMAIL, from_email: str = "news@shop.example",
                    chain_of: Mailing | None = None, condition: str = "all",
                    delay_hours: float = 0, quiet_hours: Mapping[str, Any] | None = None) -> Mailing:
        """A draft; a first step with a segment of ``segment_rules`` (default:
        everyone), or the next step of ``chain_of``'s chain."""
        mid = next(self._ids)
        if template_id is None:
            template_id = self.add_template(channel=channel.value)
        if chain_of is None:
            sid = next(self._ids)
            self.state.segments[sid] = segment_rules if segment_rules is not None else {}
            mailing = Mailing(id=mid, name=f"m{mid}", channel=channel, status=MailingStatus.DRAFT,
                              segment_id=sid, template_id=template_id, from_email=from_email,
                              chain_id=mid, step=1, quiet_hours=quiet_hours)
        else:
            last = max((m for m in self.state.mailings.values() if m.chain_id == chain_of.chain_id),
                       key=lambda m: m.step)
            mailing = Mailing(id=mid, name=f"m{mid}", channel=channel, status=MailingStatus.DRAFT,
                              template_id=template_id, from_email=from_email,
                              chain_id=chain_of.chain_id, step=last.step + 1, condition=condition,
                              delay_hours=delay_hours)
        self.state.mailings[mid] = mailing
        self.state.guard[mid] = Counts()
        return mailing

    def set_quota(self, channel: str, balance: int | None) -> None:
        self.state.quotas[channel] = balance

    def start(self, mailing: Mailing, *, now: datetime, package_size: int = 5000) -> None:
        """Send now, through the lifecycle verb (as the service does)."""
        policy = lifecycle.SendingPolicy(package_size=package_size, outbox=True)
        with self.transaction() as tx:
            current = tx.mailing(mailing.id)
            assert current is not None
            lifecycle.start(tx, policy, current, Action.SEND, now=now)

    def messages_of(self, mailing_id: int) -> list[MessageRow]:
        return sorted((m for m in self.state.messages.values() if m.mailing_id == mailing_id),
                      key=lambda m: m.id)

    def statuses(self, mailing_id: int) -> dict[str, MessageStatus]:
        """``{address: status}`` of the mailing's messages."""
        return {m.address or f"#{m.customer_id}": m.status for m in self.messages_of(mailing_id)}

    # -- the port: transactions ------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[InMemoryStore]:
        with self._lock:
            saved = copy.deepcopy(self.state)
            try:
                yield self
            except BaseException:
                self.state = saved
                raise

    def take_send_slot(self, n: int, rate: float) -> float:
        """The shared send clock in seconds from 0: the first slot waits 0."""
        wait = self.state.send_clock
        self.state.send_clock += n / rate
        self.send_slots.append((n, wait))
        return wait

    # -- mailings ---------------------------------------------------------------------------

    def mailing(self, mailing_id: int, *, lock: bool = False) -> Mailing | None:
        return self.state.mailings.get(mailing_id)

    def chain(self, chain_id: int) -> list[Mailing]:
        return sorted((m for m in self.state.mailings.values() if m.chain_id == chain_id),
                      key=lambda m: m.step)

    def write_move(self, mailing_id: int, move: Move) -> bool:
        current = self.state.mailings.get(mailing_id)
        if current is None or current.status is not move.source:
            return False
        self.state.mailings[mailing_id] = replace(current, status=move.target, **dict(move.values))
        if move.reset_guard:
            self.state.guard[mailing_id] = Counts()
        return True

    def scheduled_due(self, now: datetime) -> list[int]:
        due = [m for m in self.state.mailings.values()
               if m.status is MailingStatus.SCHEDULED and m.send_at is not None and m.send_at <= now]
        return [m.id for m in sorted(due, key=lambda m: m.send_at or now)]

    def domain_verified(self, domain: str) -> bool | None:
        return self.state.domains.get(domain)

    # -- the audience --------------------------------------------------------------------

    def _audience(self, mailing: Mailing) -> list[dict[str, Any]]:
        customers = sorted(self.state.customers.values(), key=lambda c: c["id"])
        if not mailing.is_later_step:
            assert mailing.segment_id is not None
            rule = parse_rules(self.state.segments[mailing.segment_id])
            return [c for c in customers if evaluate(rule, c)]
        previous = next(m for m in self.chain(mailing.chain_id) if m.step == mailing.step - 1)
        delivered = {m.customer_id: m for m in self.messages_of(previous.id)
                     if m.status is M.SENT and m.bounce is None}
        condition = mailing.condition or "all"

        def keep(message: MessageRow) -> bool:
            if condition == "opened":
                return message.opened_at is not None
            if condition == "not_opened":
                return message.opened_at is None
            if condition == "clicked":
                return message.clicked_at is not None
            if condition == "not_clicked":
                return message.clicked_at is None
            if condition == "not_converted":
                return not any(cid == message.customer_id and message.sent_at is not None
                               and at >= message.sent_at for cid, at in self.state.orders)
            return True

        return [c for c in customers if c["id"] in delivered and keep(delivered[c["id"]])]

    def _skip_reason(self, mailing: Mailing, customer: Mapping[str, Any]) -> str | None:
        email = mailing.channel is Channel.EMAIL
        address = customer["email"] if email else customer["phone"]
        status = customer["email_status"] if email else customer["sms_status"]
        if address is None:
            return "no_address"
        if not email and not is_e164(address):
            return "invalid_phone"
        if status != CustomerStatus.SUBSCRIBED:
            return str(status)
        if email and address.lower() in self.state.suppressed:
            return self.state.suppressed[address.lower()]
        return None

    def freeze_audience(self, mailing: Mailing, *, package_size: int) -> int:
        queued: list[int] = []
        phones: set[str] = set()
        for customer in self._audience(mailing):
            mid = next(self._ids)
            reason = self._skip_reason(mailing, customer)
            address = customer["email"] if mailing.channel is Channel.EMAIL else customer["phone"]
            if reason is None and mailing.channel is Channel.SMS:
                reason = "duplicate_phone" if address in phones else None
                phones.add(address)
            self.state.messages[mid] = MessageRow(
                id=mid, mailing_id=mailing.id, customer_id=customer["id"], address=address,
                status=M.SKIPPED if reason else M.QUEUED, skip_reason=reason)
            if reason is None:
                queued.append(mid)
        chunks = [queued[i:i + package_size] for i in range(0, len(queued), package_size)]
        for seq, chunk in enumerate(chunks, start=1):
            pid = next(self._ids)
            last = chunks[seq][0] - 1 if seq < len(chunks) else chunk[-1]
            self.state.packages[pid] = PackageRow(id=pid, mailing_id=mailing.id, seq=seq,
                                                  first_message_id=chunk[0], last_message_id=last,
                                                  size=len(chunk))
        return len(chunks)

    def count_receivable(self, mailing: Mailing) -> int:
        found = [c for c in self._audience(mailing) if self._skip_reason(mailing, c) is None]
        return len(found) if mailing.channel is Channel.EMAIL else len({c["phone"] for c in found})

    def left_to_send(self, mailing_id: int) -> bool:
        return any(m.status in (M.QUEUED, M.SENDING) for m in self.messages_of(mailing_id))

    def has_active_packages(self, mailing_id: int) -> bool:
        return any(p.mailing_id == mailing_id and p.status is P.ACTIVE
                   for p in self.state.packages.values())

    # -- packages ----------------------------------------------------------------------

    def _in(self, package: Package | PackageRow) -> list[MessageRow]:
        return [m for m in self.messages_of(package.mailing_id)
                if package.first_message_id <= m.id <= package.last_message_id]

    def count_unknown(self, mailing_id: int) -> int:
        return sum(m.status is M.UNKNOWN for m in self.messages_of(mailing_id))

    def requeue_unknown(self, mailing_id: int) -> int:
        requeued = 0
        for row in self.state.packages.values():
            if row.mailing_id != mailing_id or row.status is P.ACTIVE:
                continue
            unknown = [m for m in self._in(row) if m.status is M.UNKNOWN]
            for m in unknown:
                m.status, m.error, m.smtp_code = M.QUEUED, None, None
            if unknown:
                requeued += len(unknown)
                row.status, row.lease_owner, row.lease_until, row.not_before = P.PENDING, None, None, None
                self._store_counts(row)
        return requeued

    def claim_package(self, *, owner: str, now: datetime) -> Package | None:
        def claimable(p: PackageRow) -> bool:
            mailing = self.state.mailings[p.mailing_id]
            if mailing.status is not MailingStatus.SENDING:
                return False
            if p.status is P.PENDING:
                return mailing.cancel_requested_at is None and (p.not_before is None or p.not_before <= now)
            return p.status is P.ACTIVE and p.lease_until is not None and p.lease_until < now

        found = sorted((p for p in self.state.packages.values() if claimable(p)),
                       key=lambda p: (p.seq, p.mailing_id))
        if not found:
            return None
        p = found[0]
        return Package(id=p.id, mailing_id=p.mailing_id, seq=p.seq, first_message_id=p.first_message_id,
                       last_message_id=p.last_message_id, reserved=p.reserved,
                       taken_over=p.status is P.ACTIVE)

    def abandon_in_flight(self, package: Package) -> int:
        flying = [m for m in self._in(package) if m.status is M.SENDING]
        for m in flying:
            m.status = M.UNKNOWN
        return len(flying)

    def count_queued(self, package: Package) -> int:
        return sum(1 for m in self._in(package) if m.status is M.QUEUED)

    def lease_package(self, package: Package, *, owner: str, until: datetime, now: datetime,
                      reserved: int) -> None:
        row = self.state.packages[package.id]
        row.status, row.lease_owner, row.lease_until, row.reserved = P.ACTIVE, owner, until, reserved

    def renew_lease(self, package_id: int, *, owner: str, until: datetime) -> bool:
        row = self.state.packages[package_id]
        if row.lease_owner != owner or row.status is not P.ACTIVE:
            return False
        row.lease_until = until
        return True

    def next_group(self, package: Package, limit: int, *, after: int = 0) -> list[Recipient]:
        queued = [m for m in self._in(package)
                  if m.status is M.QUEUED and m.not_before is None and m.id > after][:limit]
        out = []
        for m in queued:
            c = self.state.customers[m.customer_id]
            out.append(Recipient(id=m.id, customer_id=m.customer_id, address=m.address or "",
                                 email=c["email"], phone=c["phone"], first_name=c["first_name"],
                                 last_name=c["last_name"], attributes=c["attributes"]))
        return out

    def mark_in_flight(self, package: Package, first_id: int, last_id: int) -> int:
        marked = 0
        for m in self._in(package):
            if first_id <= m.id <= last_id and m.status is M.QUEUED and m.not_before is None:
                m.status = M.SENDING
                marked += 1
        return marked

    def mark_ids_in_flight(self, package: Package, ids: Sequence[int]) -> int:
        wanted, marked = set(ids), 0
        for m in self._in(package):
            if m.id in wanted and m.status is M.QUEUED and m.not_before is None:
                m.status = M.SENDING
                marked += 1
        return marked

    def record_sent(self, package: Package, *, sent: Sequence[int], failures: Sequence[Failure],
                    now: datetime) -> None:
        by_id, went = {f.message_id: f for f in failures}, set(sent)
        for m in self._in(package):
            if m.status in (M.SENDING, M.UNKNOWN):
                failure = by_id.get(m.id)
                if failure is not None:
                    m.status, m.error, m.smtp_code = failure.status, failure.error, failure.smtp_code
                elif m.id in went:
                    m.status, m.sent_at = M.SENT, now
        row = self.state.packages[package.id]
        if row.status is not P.ACTIVE:
            self._store_counts(row)

    def record_results(self, package: Package, *, first_id: int, last_id: int,
                       failures: Sequence[Failure], now: datetime) -> None:
        by_id = {f.message_id: f for f in failures}
        for m in self._in(package):
            if first_id <= m.id <= last_id and m.status in (M.SENDING, M.UNKNOWN):
                failure = by_id.get(m.id)
                if failure is None:
                    m.status, m.sent_at = M.SENT, now
                else:
                    m.status, m.error, m.smtp_code = failure.status, failure.error, failure.smtp_code
        row = self.state.packages[package.id]
        if row.status is not P.ACTIVE:
            self._store_counts(row)

    def _store_counts(self, row: PackageRow) -> None:
        counts = {s: 0 for s in ("sent", "failed", "unknown", "queued")}
        for m in self._in(row):
            key = "unknown" if m.status is M.SENDING else m.status.value
            if key in counts:
                counts[key] += 1
        row.counts = counts

    def take_reservation(self, package_id: int, amount: int) -> None:
        self.state.packages[package_id].reserved -= amount

    def close_package(self, package_id: int, *, done: bool, now: datetime) -> int:
        row = self.state.packages[package_id]
        reserved = row.reserved
        row.reserved, row.lease_owner, row.lease_until = 0, None, None
        row.status = P.DONE if done else P.PENDING
        self._store_counts(row)
        return reserved

    def add_reservation(self, package_id: int, amount: int) -> None:
        self.state.packages[package_id].reserved += amount

    # -- SMS ---------------------------------------------------------------------------------

    def record_parts(self, parts: Sequence[AcceptedPart], *, now: datetime) -> None:
        self.state.parts.extend(parts)

    def release_held(self, package: Package, now: datetime) -> int:
        due = [m for m in self._in(package) if m.status is M.QUEUED and m.not_before is not None
               and m.not_before <= now]
        for m in due:
            m.not_before = None
        return len(due)

    def hold_messages(self, until: Mapping[int, datetime]) -> None:
        for mid, at in until.items():
            if self.state.messages[mid].status is M.QUEUED:
                self.state.messages[mid].not_before = at

    def earliest_hold(self, package: Package) -> datetime | None:
        held = [m.not_before for m in self._in(package) if m.status is M.QUEUED and m.not_before]
        return min(held) if held else None

    def hold_package(self, package_id: int, until: datetime) -> None:
        self.state.packages[package_id].not_before = until

    def sms_link(self, mailing_id: int, url: str) -> int:
        return self.state.links.setdefault((mailing_id, url), len(self.state.links) + 1)

    def paused_until(self, mailing_id: int, now: datetime) -> datetime | None:
        """As ``tidings.store.packages.paused_until``: when a mailing whose every
        unfinished package waits for quiet hours goes on."""
        rows = [p for p in self.state.packages.values() if p.mailing_id == mailing_id
                and p.status is not P.DONE]
        if not rows or any(p.status is P.ACTIVE or p.not_before is None or p.not_before <= now
                           for p in rows):
            return None
        return min(p.not_before for p in rows if p.not_before is not None)

    # -- guard, quota, customers ------------------------------------------------------------

    def add_guard_counts(self, mailing_id: int, *, sent: int, failed: int) -> None:
        c = self.state.guard[mailing_id]
        self.state.guard[mailing_id] = replace(c, sent=c.sent + sent, failed=c.failed + failed)

    def guard_counts(self, mailing_id: int) -> Counts:
        return self.state.guard[mailing_id]

    def quota_balance(self, channel: str, *, lock: bool = False) -> int | None:
        return self.state.quotas.get(channel)

    def change_quota(self, channel: str, delta: int) -> None:
        balance = self.state.quotas.get(channel)
        if balance is not None:
            self.state.quotas[channel] = balance + delta

    def hard_bounce(self, customer_id: int, address: str, *, now: datetime) -> None:
        customer = self.state.customers[customer_id]
        if customer["email_status"] == CustomerStatus.SUBSCRIBED:
            customer["email_status"] = CustomerStatus.BOUNCED.value
        self.state.suppressed.setdefault(address.lower(), "bounced")

    def template(self, template_id: int) -> Template | None:
        return self.state.templates.get(template_id)

    def signing_key(self, domain: str) -> tuple[str, str] | None:
        return None


class RecordingTransport:
    """A transport that keeps every envelope it was given (:attr:`sent`, in
    order) and answers with ``answer(envelope)`` (default: accepted)."""

    description = "the recording transport"

    def __init__(self, answer: Callable[[Envelope], Outcome] | None = None, *,
                 connections: int = 1) -> None:
        self.answer = answer or (lambda _envelope: SENT)
        self.connections = connections
        self._lock = threading.Lock()
        self.sent: list[Envelope] = []
        self.batches: list[int] = []
        #: Called before each batch is answered (a test may act mid-send).
        self.before_batch: Callable[[Sequence[Envelope]], None] | None = None
        self.closed = False

    def send(self, batch: Sequence[Envelope]) -> list[Outcome]:
        if self.before_batch is not None:
            self.before_batch(batch)
        outcomes = [self.answer(env) for env in batch]
        with self._lock:
            self.batches.append(len(batch))
            self.sent.extend(env for env, o in zip(batch, outcomes, strict=True)
                             if o.result.value != "deferred")
        return outcomes

    def stream(self, take: Take, done: Done) -> None:
        """As the SMTP transport: ``connections`` threads each take a chunk, send
        it (:meth:`send`) and hand back its outcomes, until there is no more."""

        def run() -> None:
            while (chunk := take()) is not None:
                done(chunk, self.send(chunk))

        threads = [threading.Thread(target=run) for _ in range(self.connections)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    def recipients(self) -> list[str]:
        return [env.rcpt for env in self.sent]

    def close(self) -> None:
        self.closed = True
