"""SMS mailings sent by the worker through SMPP into the loopback SMSC, on both databases."""

from __future__ import annotations

import collections

from tests.smsc import RTHROTTLED, LoopbackSmsc
from tests.smtpserver import free_port
from tidings.services.sending import make_worker

LONG = ("Здравствуйте, {{ customer.first_name }}! Скидка 20% на всё до воскресенья. "
        "Приходите в наш магазин, ждём вас.")


def sms_mailing(api, text: str) -> int:
    api.ok("POST", "/customers", {"customers": [
        {"email": "a@example.org", "phone": "+37120000001", "first_name": "Анна"},
        {"email": "b@example.org", "phone": "+37120000002", "first_name": "Bob"},
        {"email": "c@example.org", "phone": "+37120000003", "first_name": "Cid"},
        {"email": "d@example.org", "phone": "+37120000004", "sms_status": "unsubscribed"},
    ]}, status=201)
    segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
    template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": text}, status=201)
    return api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                        "template_id": template["id"]}, status=201)["id"]


def send_all(ctx) -> None:
    worker = make_worker(ctx)
    try:
        worker.run_until_idle()
    finally:
        worker.close()


def test_an_sms_mailing_goes_through_smpp_whole_and_once(make_ctx, api_for) -> None:
    with LoopbackSmsc() as smsc:
        smsc.answer_next(RTHROTTLED, 2)
        ctx = make_ctx(sms_url=smsc.url(throttle_pause=0.05))
        api = api_for(ctx)
        mid = sms_mailing(api, LONG)
        api.ok("POST", f"/mailings/{mid}/send")
        send_all(ctx)
        done = api.ok("GET", f"/mailings/{mid}")
        assert done["status"] == "sent" and done["progress"]["sent"] == 3
        texts = collections.Counter(smsc.accepted_texts())
        assert texts == collections.Counter(LONG.replace("{{ customer.first_name }}", name)
                                            for name in ("Анна", "Bob", "Cid"))
        assert sorted(s.destination_addr for s in smsc.accepted()) == sorted(
            ["37120000001"] * 2 + ["37120000002"] * 2 + ["37120000003"] * 2)
        assert {s.data_coding for s in smsc.accepted()} == {8}


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
        assert sorted(smsc.accepted_texts()) == ["Sale today, Bob", "Sale today, Cid", "Sale today, Анна"]
        assert len(smsc.submits) == 3
