"""The worker's rules on the in-memory twin of its store: no database, no network.

Each test drives a real :class:`~tidings.engine.worker.Worker` against
:class:`~tidings.testing.InMemoryStore` and a
:class:`~tidings.testing.RecordingTransport`, with a clock and a sleep the test
controls, and compares the whole resulting state.
"""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest

from tidings.config import Settings
from tidings.domain.mailings import InterruptCode, MailingStatus
from tidings.domain.messages import MessageStatus, PackageStatus
from tidings.engine import lifecycle
from tidings.engine.worker import LeaseLost, Worker
from tidings.testing import InMemoryStore, RecordingTransport
from tidings.transports.base import SENT, Envelope, Outcome, Result

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
Q, S, F, U = MessageStatus.QUEUED, MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.UNKNOWN


class Clock:
    """Wall clock and monotonic clock together; sleeping moves both."""

    def __init__(self) -> None:
        self.now = START
        self.seconds = 0.0
        self.slept: list[float] = []

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.seconds

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.advance(seconds)

    def advance(self, seconds: float) -> None:
        self.seconds += seconds
        self.now += timedelta(seconds=seconds)


def settings(**overrides: object) -> Settings:
    values: dict[str, object] = {"smtp_url": "smtp://relay.test:25", "package_size": 4, "send_group": 2,
                                 "worker_lease": 30, "smtp_retry_for": 10, "reputation_min_sample": 4,
                                 "require_verified_domain": False, "public_url": "http://tidings.test"}
    return Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg, arg-type]


def make(store: InMemoryStore, transport: RecordingTransport, clock: Clock, **overrides: object) -> Worker:
    return Worker(store=store, settings=settings(**overrides), secret=b"test-secret",
                  transport=transport, clock=clock, sleep=clock.sleep, monotonic=clock.monotonic,
                  owner="worker-a")


def customers(store: InMemoryStore, n: int) -> list[str]:
    emails = [f"c{i}@example.org" for i in range(n)]
    for address in emails:
        store.add_customer(email=address, first_name=address[:2])
    return emails


def started(store: InMemoryStore, clock: Clock, *, package_size: int = 4) -> int:
    mailing = store.add_mailing()
    store.start(mailing, now=clock(), package_size=package_size)
    return mailing.id


def packages(store: InMemoryStore, mailing_id: int) -> list[tuple[PackageStatus, int]]:
    return [(p.status, p.reserved) for p in sorted(store.state.packages.values(), key=lambda p: p.seq)
            if p.mailing_id == mailing_id]


def test_every_recipient_gets_the_mailing_once_and_it_is_sent():
    store, transport, clock = InMemoryStore(), RecordingTransport(), Clock()
    emails = customers(store, 10)
    mid = started(store, clock)

    make(store, transport, clock).run_until_idle()

    assert transport.recipients() == emails
    assert store.statuses(mid) == {e: S for e in emails}
    assert packages(store, mid) == [(PackageStatus.DONE, 0)] * 3
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]
    assert transport.batches == [2, 2, 2, 2, 2]  # groups of TIDINGS_SEND_GROUP


def test_deferred_messages_are_retried_with_doubling_pauses_then_sent():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 2)
    mid = started(store, clock)
    answers = iter([Outcome(result=Result.DEFERRED, detail="421 busy")] * 6)
    transport = RecordingTransport(lambda env: next(answers, SENT))

    make(store, transport, clock).run_until_idle()

    assert clock.slept == [0.5, 1.0, 2.0]  # three deferred groups of two, then accepted
    assert transport.recipients() == emails
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_server_deferring_past_the_retry_window_interrupts_and_releases_the_package():
    store, clock = InMemoryStore(), Clock()
    customers(store, 3)
    store.set_quota("email", 10)
    mid = started(store, clock)
    transport = RecordingTransport(lambda env: Outcome(result=Result.DEFERRED, detail="451 try later"))

    make(store, transport, clock, smtp_retry_for=10).run_until_idle()

    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.INTERRUPTED
    assert mailing.interrupt_code == InterruptCode.TECHNICAL_ERROR
    assert "451 try later" in (mailing.interrupt_message or "")
    assert clock.slept == [0.5, 1.0, 2.0, 4.0, 8.0]  # 15.5 s >= 10 s: it gives up
    assert transport.sent == []
    assert set(store.statuses(mid).values()) == {Q}  # nothing lost, nothing half-sent
    assert packages(store, mid) == [(PackageStatus.PENDING, 0)]
    assert store.state.quotas["email"] == 10  # the reservation went back


def test_a_worker_that_lost_its_lease_stops_and_nothing_is_sent_twice():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 4)
    mid = started(store, clock)
    transport = RecordingTransport()
    slow = make(store, transport, clock)
    package = slow.claim()
    assert package is not None
    clock.advance(31)  # its lease ran out ...
    other = Worker(store=store, settings=settings(), secret=b"test-secret", transport=transport,
                   clock=clock, sleep=clock.sleep, monotonic=clock.monotonic, owner="worker-b")
    taken = other.claim()  # ... and another worker took the package over
    assert taken is not None and taken.taken_over

    with pytest.raises(LeaseLost):
        slow.process(package)
    other.process(taken)

    assert transport.recipients() == emails
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_taken_over_package_leaves_the_dead_workers_group_unknown_and_never_resends_it():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 4)
    mid = started(store, clock)
    dead = make(store, RecordingTransport(), clock)
    package = dead.claim()
    assert package is not None
    group = dead._prepare_group(package, dead._renderer(store.mailing(mid)), 2)  # type: ignore[arg-type]
    assert group is not None
    with store.transaction() as tx:  # a chunk of two goes out; then the worker dies
        assert tx.mark_in_flight(package, group.recipients[0].id, group.recipients[-1].id) == 2

    clock.advance(31)
    transport = RecordingTransport()
    make(store, transport, clock).run_until_idle()

    assert transport.recipients() == emails[2:]
    assert store.statuses(mid) == {emails[0]: U, emails[1]: U, emails[2]: S, emails[3]: S}
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_only_the_chunks_on_the_wire_are_in_flight_never_a_whole_group():
    # Three connections taking chunks of 2 from groups of 24: while any chunk is
    # with the server, at most 3 x 2 x 2 messages are marked in flight (the chunk on
    # the wire and the next, per connection; a worker killed then leaves no more
    # unknown), and every reply is recorded as it comes.
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 48)
    mid = started(store, clock, package_size=48)
    transport = RecordingTransport(connections=3)
    in_flight: list[int] = []

    def count_in_flight(batch: object) -> None:
        with store.transaction():
            in_flight.append(sum(m.status is MessageStatus.SENDING for m in store.messages_of(mid)))

    transport.before_batch = count_in_flight
    make(store, transport, clock, send_group=24, send_chunk=2, package_size=48).run_until_idle()

    assert sorted(transport.recipients()) == sorted(emails)  # each once
    assert transport.batches == [2] * 24
    assert in_flight and max(in_flight) <= 3 * 2 * 2 and min(in_flight) >= 2
    assert store.statuses(mid) == {e: S for e in emails}
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_worker_asked_to_stop_records_what_went_and_hands_the_package_back():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 12)
    store.set_quota("email", 100)
    mid = started(store, clock, package_size=12)
    transport = RecordingTransport()
    stopping = make(store, transport, clock, send_group=6, send_chunk=2, package_size=12)

    def stop_after_the_second_chunk(batch: object) -> None:
        if len(transport.batches) == 1:
            stopping.stop_event.set()  # SIGTERM while the second chunk is on the wire

    transport.before_batch = stop_after_the_second_chunk
    assert stopping.tick()

    # the chunk on the wire and the one marked for it to take next went; nothing more
    assert transport.recipients() == emails[:6]
    assert list(store.statuses(mid).values()) == [S] * 6 + [Q] * 6  # nothing left in flight
    assert packages(store, mid) == [(PackageStatus.PENDING, 0)]  # handed back, reservation too
    assert store.state.quotas["email"] == 94
    other = RecordingTransport()
    make(store, other, clock, send_group=6, send_chunk=2, package_size=12).run_until_idle()  # at once
    assert other.recipients() == emails[6:]
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_short_quota_interrupts_before_sending_and_resume_after_a_topup_completes():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 6)
    store.set_quota("email", 5)
    mid = started(store, clock)
    transport = RecordingTransport()
    worker = make(store, transport, clock)

    worker.run_until_idle()  # the first package (4) fits, the second (2) does not: 1 left

    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.INTERRUPTED
    assert mailing.interrupt_code == InterruptCode.QUOTA_EXHAUSTED
    assert transport.recipients() == emails[:4]
    assert store.state.quotas["email"] == 1
    assert packages(store, mid) == [(PackageStatus.DONE, 0), (PackageStatus.PENDING, 0)]

    store.state.quotas["email"] += 10
    with store.transaction() as tx:
        lifecycle.resume(tx, mailing, is_admin=False, now=clock())
    worker.run_until_idle()

    assert transport.recipients() == emails
    assert store.state.quotas["email"] == 9  # charged exactly what was sent
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_too_many_refusals_interrupt_for_reputation_after_the_minimum_sample():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 8)
    mid = started(store, clock, package_size=8)
    refused = Outcome(result=Result.REJECTED, code=550, detail="5.7.1 spam")
    transport = RecordingTransport(lambda env: refused if env.rcpt != emails[0] else SENT)

    make(store, transport, clock, reputation_min_sample=4, max_bounce_rate=0.5).run_until_idle()

    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.INTERRUPTED
    assert mailing.interrupt_code == InterruptCode.REPUTATION
    assert "75.0% of 4 messages" in (mailing.interrupt_message or "")
    assert transport.recipients() == emails[:4]  # it stopped after the group that crossed the line
    assert list(store.statuses(mid).values()) == [S, F, F, F, Q, Q, Q, Q]


def test_a_hard_bounce_at_smtp_time_marks_the_customer_bounced_and_suppresses_the_address():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 2)
    mid = started(store, clock)
    gone = Outcome(result=Result.REJECTED, code=550, detail="5.1.1 no such user")
    transport = RecordingTransport(lambda env: gone if env.rcpt == emails[1] else SENT)

    make(store, transport, clock).run_until_idle()

    assert store.statuses(mid) == {emails[0]: S, emails[1]: F}
    statuses = {c["email"]: c["email_status"] for c in store.state.customers.values()}
    assert statuses == {emails[0]: "subscribed", emails[1]: "bounced"}
    assert store.state.suppressed == {emails[1]: "bounced"}


def test_cancel_finishes_the_package_in_flight_and_starts_no_other():
    store, clock = InMemoryStore(), Clock()
    emails = customers(store, 8)
    mid = started(store, clock)
    transport = RecordingTransport()
    canceled_during: list[MailingStatus] = []

    def cancel_once(batch: object) -> None:
        if not canceled_during:
            with store.transaction() as tx:
                mailing = tx.mailing(mid)
                assert mailing is not None
                lifecycle.cancel(tx, mailing, now=clock())
                canceled_during.append(tx.mailing(mid).status)  # type: ignore[union-attr]

    transport.before_batch = cancel_once
    make(store, transport, clock).run_until_idle()

    assert canceled_during == [MailingStatus.SENDING]  # canceling: the package is still going out
    assert transport.recipients() == emails[:4]  # the whole first package, nothing more
    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.CANCELED and not mailing.canceling
    assert list(store.statuses(mid).values()) == [S] * 4 + [Q] * 4
    assert packages(store, mid) == [(PackageStatus.DONE, 0), (PackageStatus.PENDING, 0)]


def test_a_rendering_error_fails_that_message_only():
    store, clock = InMemoryStore(), Clock()
    store.add_customer(email="ok@example.org", first_name="Ok", ratio=1)
    store.add_customer(email="odd@example.org", first_name="Odd", ratio=0)
    tid = store.add_template(html="<p>{{ 1 / customer.attributes.ratio }}</p>")
    mailing = store.add_mailing(template_id=tid)
    store.start(mailing, now=clock())
    transport = RecordingTransport()

    make(store, transport, clock).run_until_idle()

    assert transport.recipients() == ["ok@example.org"]
    assert store.statuses(mailing.id) == {"ok@example.org": S, "odd@example.org": F}
    odd = store.messages_of(mailing.id)[1]
    assert odd.error is not None and "cannot render the template for this customer" in odd.error
    assert store.mailing(mailing.id).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_the_send_rate_spaces_groups_by_the_shared_clock():
    store, clock = InMemoryStore(), Clock()
    customers(store, 4)
    started(store, clock)
    transport = RecordingTransport()

    make(store, transport, clock, send_rate=2.0, send_group=200).run_until_idle()

    # groups shrink to the rate (2 a second); each waits for the slots taken before it
    assert store.send_slots == [(2, 0.0), (2, 1.0)]
    assert clock.slept == [1.0]


def test_the_next_chain_step_is_scheduled_for_its_chain_time_when_a_step_is_sent():
    store, clock = InMemoryStore(), Clock()
    customers(store, 2)
    first = store.add_mailing()
    reminder = store.add_mailing(chain_of=first, delay_hours=24, condition="not_opened")
    store.start(first, now=clock())
    make(store, RecordingTransport(), clock).run_until_idle()

    step = store.mailing(reminder.id)
    assert step is not None and step.status is MailingStatus.SCHEDULED
    assert step.send_at == START + timedelta(hours=24)

    clock.advance(24 * 3600)
    transport = RecordingTransport()
    make(store, transport, clock).run_until_idle()
    assert transport.recipients() == ["c0@example.org", "c1@example.org"]  # nobody opened
    assert store.mailing(reminder.id).status is MailingStatus.SENT  # type: ignore[union-attr]


def envelope_of(transport: RecordingTransport, rcpt: str) -> Envelope:
    return next(env for env in transport.sent if env.rcpt == rcpt)


def test_each_message_is_personalised_and_signed_for_its_recipient():
    store, clock = InMemoryStore(), Clock()
    store.add_customer(email="ann@example.org", first_name="Ann")
    started(store, clock)
    transport = RecordingTransport()

    make(store, transport, clock).run_until_idle()

    sent = envelope_of(transport, "ann@example.org")
    message = email.message_from_bytes(sent.data, policy=email.policy.default)
    html = message.get_body(("html",))
    assert html is not None and "Hi Ann" in html.get_content()
    assert "http://tidings.test/t/o/" in html.get_content()  # the open pixel, on the public URL
    assert sent.mail_from.startswith("bounces+") and sent.mail_from.endswith("@shop.example")
