"""SMS mailings end to end: the worker sends through SMPP into the loopback SMSC
(real sockets), receipts and replies come back from it, on both databases."""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from tests.smsc import RTHROTTLED, LoopbackSmsc
from tests.smtpserver import free_port
from tidings.services.sending import make_worker
from tidings.store.tables import customers

LONG = ("Здравствуйте, {{ customer.first_name }}! Скидка 20% на всё до воскресенья. "
        "Приходите в наш магазин, ждём вас.")
#: A number as sender: nothing is added to the text (a name would add "STOP: <link>").
NUMBER = "%2B37120009999"


def sms_mailing(api, text: str, people: list[dict] | None = None) -> int:
    api.ok("POST", "/customers", {"customers": people or [
        {"email": "a@example.org", "phone": "+37120000001", "first_name": "Анна"},
        {"email": "b@example.org", "phone": "+37120000002", "first_name": "Bob"},
        {"email": "c@example.org", "phone": "+37120000003", "first_name": "Cid"},
        {"email": "d@example.org", "phone": "+37120000004", "sms_status": "unsubscribed"},
    ]}, status=201)
    segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
    template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": text}, status=201)
    return api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                        "template_id": template["id"],
                                        "quiet_hours": {"enabled": False}}, status=201)["id"]


def send_all(ctx) -> None:
    worker = make_worker(ctx)
    try:
        worker.run_until_idle()
    finally:
        worker.close()


def eventually(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "not within the time"
        time.sleep(0.02)


def by_destination(smsc: LoopbackSmsc) -> dict[str, list]:
    found: dict[str, list] = collections.defaultdict(list)
    for submit in smsc.accepted():
        found[submit.destination_addr].append(submit)
    return found


def test_a_long_cyrillic_text_arrives_whole_as_two_ucs2_parts(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        api = api_for(ctx)
        mid = sms_mailing(api, LONG)
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)

        assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
        assert collections.Counter(smsc.accepted_texts()) == collections.Counter(
            LONG.replace("{{ customer.first_name }}", name) for name in ("Анна", "Bob", "Cid"))
        parts = by_destination(smsc)
        assert sorted(parts) == ["37120000001", "37120000002", "37120000003"]
        for submits in parts.values():
            assert [(s.data_coding, s.udh[1:], s.registered_delivery) for s in submits] == [
                (8, (2, 1), 1), (8, (2, 2), 1)]
            assert (submits[0].source_addr, submits[0].source_addr_ton) == ("37120009999", 1)


def test_ten_euro_sale_is_one_gsm7_part_of_thirteen_characters(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        api = api_for(ctx)
        mid = sms_mailing(api, "10€ [sale]")
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)

        submits = smsc.accepted()
        assert len(submits) == 3
        assert {(s.text, s.data_coding, s.esm_class & 0x40, len(s.short_message)) for s in submits} == {
            ("10€ [sale]", 0, 0, 13)}


def test_the_audience_is_exactly_the_subscribed_valid_phones_each_once(make_ctx, api_for, engine) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        api = api_for(ctx)
        mid = sms_mailing(api, "Hi {{ customer.first_name }}", people=[
            {"email": "a@example.org", "phone": "+37120000001", "first_name": "A"},
            {"email": "b@example.org", "phone": "+371 2000 0002", "first_name": "B"},
            {"email": "c@example.org", "phone": "+37120000002", "first_name": "C"},  # B's phone
            {"email": "d@example.org", "phone": "+37120000004", "sms_status": "unsubscribed"},
            {"email": "e@example.org", "first_name": "No phone"},
            {"email": "f@example.org", "phone": "+37120000006", "first_name": "F"},
        ])
        with engine.begin() as conn:  # written around the API: not a number an SMSC can take
            conn.execute(customers.update().where(customers.c.email == "f@example.org")
                         .values(phone="0037120000006"))
        started = api.ok("POST", f"/mailings/{mid}/send")
        assert started["progress"]["skipped"] == 4
        send_all(ctx)

        assert sorted((s.destination_addr, s.text) for s in smsc.accepted()) == [
            ("37120000001", "Hi A"), ("37120000002", "Hi B")]
        assert len(smsc.submits) == 2
        with engine.begin() as conn:
            reasons = dict(conn.execute(sa.text(
                "SELECT c.email, m.skip_reason FROM messages m JOIN customers c ON c.id = m.customer_id "
                "WHERE m.status = 'skipped'")).all())
        assert reasons == {"c@example.org": "duplicate_phone", "d@example.org": "unsubscribed",
                           "e@example.org": "no_address", "f@example.org": "invalid_phone"}


def test_throttling_loses_and_repeats_nothing(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        smsc.answer_next(RTHROTTLED, 3)
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER, throttle_pause=0.05))
        api = api_for(ctx)
        mid = sms_mailing(api, LONG)
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)

        done = api.ok("GET", f"/mailings/{mid}")
        assert done["status"] == "sent" and done["progress"]["sent"] == 3
        assert len(smsc.accepted()) == 6  # 3 messages of 2 parts, none twice
        throttled = [s for s in smsc.submits if s.status == RTHROTTLED]
        assert len(throttled) == 3
        accepted_raw = collections.Counter(s.raw for s in smsc.accepted())
        assert all(accepted_raw[s.raw] == 1 for s in throttled)  # the same submit, sent again


def test_an_smsc_that_is_down_interrupts_and_resume_sends_each_once(make_ctx, api_for) -> None:
    port = free_port()
    ctx = make_ctx(sms_url=f"smpp://tidings:secret@127.0.0.1:{port}?source=Shop", smtp_retry_for=0)
    api = api_for(ctx)
    mid = sms_mailing(api, "Sale today, {{ customer.first_name }}")
    api.ok("POST", f"/mailings/{mid}/send")
    send_all(ctx)
    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "technical_error"
    assert f"cannot connect to SMSC 127.0.0.1:{port}" in stopped["interrupt_reason"]["message"]

    with LoopbackSmsc(port=port) as smsc:
        api.ok("POST", f"/mailings/{mid}/resume")
        send_all(ctx)
        done = api.ok("GET", f"/mailings/{mid}")
        assert done["status"] == "sent" and done["progress"]["sent"] == 3
        texts = sorted(t.split("\n")[0] for t in smsc.accepted_texts())
        assert texts == ["Sale today, Bob", "Sale today, Cid", "Sale today, Анна"]
        assert len(smsc.submits) == 3
        # the sender is a name, which cannot be replied to: each SMS ends with its opt-out link
        assert all(t.split("\n")[1].startswith("STOP: http://tidings.test/s/") for t in smsc.accepted_texts())


def test_receipts_in_any_id_form_and_replies_update_statistics_and_customers(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:  # ids "ff", "100", "101" for the three messages, in order
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER), sms_help_text="Shop: reply STOP to opt out.")
        api = api_for(ctx)
        mid = sms_mailing(api, "Hi {{ customer.first_name }}")
        api.ok("POST", f"/mailings/{mid}/send")
        worker = make_worker(ctx)
        try:
            worker.run_until_idle()
            assert sorted(s.message_id for s in smsc.accepted()) == ["100", "101", "ff"]
            first = {s.message_id: s.destination_addr for s in smsc.accepted()}

            assert smsc.send_receipt("000000FF", stat="DELIVRD") == 0  # padded, upper case
            assert smsc.send_receipt("256", stat="UNDELIV", form="tlv") == 0  # decimal of 0x100
            assert smsc.send_receipt("101", stat="EXPIRED", form="text-only") == 0
            assert smsc.send_receipt("ff", stat="DELIVRD") == 0  # a repeat counts once

            def receipts_counted() -> bool:
                stats = api.ok("GET", f"/mailings/{mid}/stats")
                return stats["delivered"] == 1 and stats["undelivered"] == 2

            eventually(receipts_counted)
            stats = api.ok("GET", f"/mailings/{mid}/stats")
            assert {k: stats["receipts"][k] for k in ("delivered", "undelivered", "expired", "rejected",
                                                     "none")} == {
                "delivered": 1, "undelivered": 1, "expired": 1, "rejected": 0, "none": 0}

            bob = api.ok("GET", "/customers?email=b@example.org")["customers"][0]
            assert first["100"] == "37120000002" and bob["sms_status"] == "subscribed"
            assert smsc.send_inbound(" Stop ", source="37120000002") == 0
            eventually(lambda: api.ok("GET", f"/customers/{bob['id']}")["sms_status"] == "unsubscribed")
            eventually(lambda: api.ok("GET", f"/mailings/{mid}/stats")["unsubscribed"] == 1)

            assert smsc.send_inbound("START", source="37120000002") == 0
            eventually(lambda: api.ok("GET", f"/customers/{bob['id']}")["sms_status"] == "subscribed")
            assert smsc.send_inbound("please stop the music", source="37120000002") == 0
            assert smsc.send_inbound("help", source="37120000003") == 0
            eventually(lambda: any(s.destination_addr == "37120000003" and "reply STOP" in s.text
                                   for s in smsc.accepted()))
            assert api.ok("GET", f"/customers/{bob['id']}")["sms_status"] == "subscribed"
            assert api.ok("GET", f"/mailings/{mid}/stats")["unsubscribed"] == 1
        finally:
            worker.close()


def test_a_receipt_that_comes_before_its_part_is_recorded_is_applied_then(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        api = api_for(ctx)
        mid = sms_mailing(api, "Hi")
        # the second part the SMSC will accept gets the id 0x100; the webhook says 256
        early = api.ok("POST", "/events", {"type": "delivered", "message_id": "256"})
        assert (early["applied"], early["matched"]) == (False, False)
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)

        stats = api.ok("GET", f"/mailings/{mid}/stats")
        assert (stats["delivered"], stats["undelivered"]) == (1, 0)
        later = api.ok("POST", "/events", {"type": "rejected", "message_id": "0x101"[2:]})
        assert later["applied"] is True
        assert api.ok("GET", f"/mailings/{mid}/stats")["receipts"]["rejected"] == 1


def test_a_receipt_after_the_wait_is_not_counted(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER), sms_receipt_wait=3600)
        api = api_for(ctx)
        mid = sms_mailing(api, "Hi")
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)
        sent = ctx.now()
        ctx.clock = lambda: sent + timedelta(hours=2)

        late = api.ok("POST", "/events", {"type": "delivered", "message_id": "ff"})

        assert late["applied"] is False and late["matched"] is True
        stats = api.ok("GET", f"/mailings/{mid}/stats")
        assert (stats["delivered"], stats["receipts"]["none"]) == (0, 3)
        assert stats["receipts"]["counted_until"] is not None


def test_the_quota_is_charged_per_part(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        api = api_for(ctx)
        mid = sms_mailing(api, LONG)  # 2 UCS-2 parts each
        api.ok("POST", "/quota/topup", {"channel": "sms", "amount": 5})
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)

        stopped = api.ok("GET", f"/mailings/{mid}")
        assert stopped["status"] == "interrupted"
        assert stopped["interrupt_reason"]["code"] == "quota_exhausted"
        assert "1 part left, the next message needs 2 parts" in stopped["interrupt_reason"]["message"]
        assert len(smsc.accepted()) == 4 and stopped["progress"]["sent"] == 2
        assert api.ok("GET", "/quota")["sms"]["balance"] == 1

        api.ok("POST", "/quota/topup", {"channel": "sms", "amount": 10})
        api.ok("POST", f"/mailings/{mid}/resume")
        send_all(ctx)
        assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
        assert len(smsc.accepted()) == 6 and len(smsc.submits) == 6
        assert api.ok("GET", "/quota")["sms"]["balance"] == 9


def test_quiet_hours_pause_and_resume_at_the_recipients_morning(make_ctx, api_for) -> None:
    evening = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 22:30 in Riga, 15:30 in New York
    with LoopbackSmsc() as smsc:
        ctx = make_ctx(sms_url=smsc.url(source=NUMBER))
        ctx.clock = lambda: evening
        api = api_for(ctx)
        api.ok("POST", "/customers", {"customers": [
            {"email": "riga@example.org", "phone": "+37120000001"},
            {"email": "ny@example.org", "phone": "+37120000002",
             "attributes": {"timezone": "America/New_York"}}]}, status=201)
        segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
        template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": "Hi"}, status=201)
        created = api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                               "template_id": template["id"]}, status=201)
        assert created["quiet_hours"] == {"enabled": True, "window": "21:00-09:00"}
        api.ok("POST", f"/mailings/{created['id']}/send")
        send_all(ctx)

        assert [s.destination_addr for s in smsc.accepted()] == ["37120000002"]
        paused = api.ok("GET", f"/mailings/{created['id']}")
        assert paused["status"] == "sending"
        assert paused["status_label"] == "Being sent 50%, paused for quiet hours until 2026-01-16 07:00 UTC"
        assert paused["paused_until"] == "2026-01-16T07:00:00+00:00"

        ctx.clock = lambda: datetime(2026, 1, 16, 6, 59, tzinfo=UTC)
        send_all(ctx)
        assert len(smsc.accepted()) == 1

        ctx.clock = lambda: datetime(2026, 1, 16, 7, 0, tzinfo=UTC)  # 09:00 in Riga
        send_all(ctx)
        assert [s.destination_addr for s in smsc.accepted()] == ["37120000002", "37120000001"]
        assert api.ok("GET", f"/mailings/{created['id']}")["status"] == "sent"
