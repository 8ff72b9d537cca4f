"""The worker's SMS rules on the in-memory twin: quota per part, quiet hours,
parts kept for receipts, short links and the opt-out line. Fixed clocks."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from tidings.config import Settings
from tidings.domain.mailings import Channel, InterruptCode, MailingStatus
from tidings.domain.messages import AcceptedPart, MessageStatus
from tidings.domain.sms import summarize
from tidings.domain.tracking import verify_short
from tidings.engine import lifecycle
from tidings.engine.worker import Worker
from tidings.testing import InMemoryStore, RecordingTransport
from tidings.transports.base import Envelope, Outcome, Result

S, Q, U = MessageStatus.SENT, MessageStatus.QUEUED, MessageStatus.UNKNOWN
#: 176 GSM-7 characters: two parts (153 a part).
TWO_PARTS = "Sale! " + "x" * 170
NIGHT = {"enabled": True, "window": "21:00-09:00"}


class Clock:
    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def worker(store: InMemoryStore, transport: RecordingTransport, clock: Clock, **overrides: object) -> Worker:
    values: dict[str, object] = {"smtp_url": "smtp://relay.test:25", "send_group": 200,
                                 "public_url": "http://tidings.test", "require_verified_domain": False,
                                 "timezone": "UTC", "sms_opt_out": "never"}
    settings = Settings(_env_file=None, **(values | overrides))  # type: ignore[call-arg, arg-type]
    return Worker(store=store, settings=settings, secret=b"test-secret", transport=RecordingTransport(),
                  sms_transport=lambda: transport, clock=clock, sleep=lambda _s: None,
                  monotonic=lambda: 0.0, owner="worker-a")


def sms_mailing(store: InMemoryStore, text: str, *, quiet: dict[str, object] | None = None) -> int:
    template = store.add_template(channel="sms", text=text)
    mailing = store.add_mailing(channel=Channel.SMS, template_id=template, quiet_hours=quiet)
    return mailing.id


def start(store: InMemoryStore, mailing_id: int, clock: Clock) -> None:
    mailing = store.mailing(mailing_id)
    assert mailing is not None
    store.start(mailing, now=clock())


def accepted_with_ids(envelope: Envelope) -> Outcome:
    parts = summarize(envelope.data.decode()).parts
    return Outcome(result=Result.SENT, remote_ids=tuple(f"{envelope.message_id:x}{n}" for n in range(parts)))


def test_a_balance_of_five_parts_pays_for_two_messages_of_two_parts_then_stops() -> None:
    store, clock = InMemoryStore(), Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    phones = ["+37120000001", "+37120000002", "+37120000003"]
    for phone in phones:
        store.add_customer(phone=phone)
    mid = sms_mailing(store, TWO_PARTS)
    assert summarize(TWO_PARTS).parts == 2
    store.set_quota("sms", 5)
    start(store, mid, clock)
    transport = RecordingTransport(accepted_with_ids)

    worker(store, transport, clock).run_until_idle()

    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.INTERRUPTED
    assert mailing.interrupt_code == InterruptCode.QUOTA_EXHAUSTED
    assert mailing.interrupt_message == ("The SMS quota is exhausted: 1 part left, the next message "
                                         "needs 2 parts. Top up the quota, then resume.")
    assert transport.recipients() == phones[:2]
    assert store.state.quotas["sms"] == 1
    assert [m.status for m in store.messages_of(mid)] == [S, S, Q]

    store.state.quotas["sms"] += 3
    with store.transaction() as tx:
        lifecycle.resume(tx, mailing, is_admin=False, now=clock())
    worker(store, transport, clock).run_until_idle()

    assert transport.recipients() == phones
    assert store.state.quotas["sms"] == 2  # 1 + 3 - 2: charged exactly the parts sent
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]
    assert all(p.reserved == 0 for p in store.state.packages.values())


def test_parts_accepted_are_kept_and_only_accepted_parts_are_charged() -> None:
    store, clock = InMemoryStore(), Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    for phone in ("+37120000001", "+37120000002", "+37120000003"):
        store.add_customer(phone=phone)
    mid = sms_mailing(store, TWO_PARTS)
    store.set_quota("sms", 100)
    start(store, mid, clock)

    def answer(envelope: Envelope) -> Outcome:
        if envelope.rcpt.endswith("2"):  # the link broke after its first part was accepted
            return Outcome(result=Result.UNCERTAIN, remote_ids=("00FF",), detail="link broke")
        if envelope.rcpt.endswith("3"):
            return Outcome(result=Result.REJECTED, code=0x0B, detail="bad number")
        return Outcome(result=Result.SENT, remote_ids=("0A", "0B"))

    worker(store, RecordingTransport(answer), clock).run_until_idle()

    first, second, third = store.messages_of(mid)
    assert [first.status, second.status, third.status] == [S, U, MessageStatus.FAILED]
    assert store.state.parts == [
        AcceptedPart(message_id=first.id, part=1, remote_id="0A"),
        AcceptedPart(message_id=first.id, part=2, remote_id="0B"),
        AcceptedPart(message_id=second.id, part=1, remote_id="00FF"),
    ]
    assert store.state.quotas["sms"] == 100 - 2 - 1


def test_quiet_hours_hold_those_in_their_night_release_the_package_and_resume_at_their_morning() -> None:
    # 20:30 UTC on a winter day: 22:30 in Riga (night), 15:30 in New York (day).
    store, clock = InMemoryStore(), Clock(datetime(2026, 1, 15, 20, 30, tzinfo=UTC))
    store.add_customer(phone="+37120000001")  # Latvia: the number's zone
    store.add_customer(phone="+37120000002", timezone="America/New_York")  # the attribute wins
    store.add_customer(phone="+447700900123")  # Britain: 20:30, allowed
    mid = sms_mailing(store, "Hi", quiet=NIGHT)
    start(store, mid, clock)
    transport = RecordingTransport()
    w = worker(store, transport, clock)

    w.run_until_idle()

    assert transport.recipients() == ["+37120000002", "+447700900123"]
    mailing = store.mailing(mid)
    assert mailing is not None and mailing.status is MailingStatus.SENDING
    morning_in_riga = datetime(2026, 1, 16, 7, 0, tzinfo=UTC)
    assert store.paused_until(mid, clock()) == morning_in_riga
    assert [(p.status.value, p.not_before) for p in store.state.packages.values()] == [
        ("pending", morning_in_riga)]
    batches = len(transport.batches)

    clock.now = morning_in_riga - timedelta(minutes=1)
    assert w.tick() is False  # nothing to claim: the worker idles, it does not spin
    assert len(transport.batches) == batches

    clock.now = morning_in_riga
    w.run_until_idle()

    assert transport.recipients() == ["+37120000002", "+447700900123", "+37120000001"]
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_without_quiet_hours_everyone_goes_at_night() -> None:
    store, clock = InMemoryStore(), Clock(datetime(2026, 1, 15, 23, 0, tzinfo=UTC))
    store.add_customer(phone="+37120000001")
    mid = sms_mailing(store, "Hi", quiet={"enabled": False, "window": "21:00-09:00"})
    start(store, mid, clock)
    transport = RecordingTransport()

    worker(store, transport, clock).run_until_idle()

    assert transport.recipients() == ["+37120000001"]
    assert store.mailing(mid).status is MailingStatus.SENT  # type: ignore[union-attr]


def test_a_recipient_whose_zone_is_unknown_waits_for_the_shops_morning() -> None:
    store, clock = InMemoryStore(), Clock(datetime(2026, 1, 15, 22, 0, tzinfo=UTC))
    store.add_customer(phone="+999123456789")  # no country: fails closed to the shop's zone
    mid = sms_mailing(store, "Hi", quiet=NIGHT)
    start(store, mid, clock)
    transport = RecordingTransport()

    worker(store, transport, clock, timezone="Europe/Berlin").run_until_idle()

    assert transport.recipients() == []
    assert store.paused_until(mid, clock()) == datetime(2026, 1, 16, 8, 0, tzinfo=UTC)  # 09:00 Berlin


def test_links_are_short_and_signed_per_recipient_and_a_name_sender_adds_the_opt_out_line() -> None:
    store, clock = InMemoryStore(), Clock(datetime(2026, 12, 1, 12, 0, tzinfo=UTC))
    store.add_customer(phone="+37120000001")
    store.add_customer(phone="+37120000002")
    mid = sms_mailing(store, "New in: https://shop.example/new?x=1 and https://shop.example/sale")
    start(store, mid, clock)
    transport = RecordingTransport()

    worker(store, transport, clock, sms_url="smpp://u:p@127.0.0.1:1?source=Shop",
           sms_opt_out="auto").run_until_idle()

    texts = [env.data.decode() for env in transport.sent]
    pattern = re.compile(r"New in: http://tidings\.test/s/(\S+) and http://tidings\.test/s/(\S+)\n"
                         r"STOP: http://tidings\.test/s/(\S+)")
    found = [pattern.fullmatch(text) for text in texts]
    assert all(found), texts
    links = {(mid_, n) for m in found if m for (mid_, n) in
             (verify_short(b"test-secret", token) for token in m.groups())}
    ids = [m.id for m in store.messages_of(mid)]
    numbers = store.state.links
    assert numbers == {(mid, "https://shop.example/new?x=1"): 1, (mid, "https://shop.example/sale"): 2}
    assert links == {(i, n) for i in ids for n in (1, 2, 0)}
