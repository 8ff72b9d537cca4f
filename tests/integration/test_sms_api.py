"""The SMS parts of the API: phones in E.164, receipts and replies through
POST /events from an HTTP gateway, quiet hours on a mailing."""

from __future__ import annotations

import re
from datetime import timedelta

import sqlalchemy as sa

from tests.builders import draft_mailing, numbered, send
from tests.integration.test_sms import Gateway
from tidings.services.sending import make_worker
from tidings.store.tables import messages


def test_phones_are_stored_in_e164_and_an_invalid_one_is_a_422_naming_the_field(make_ctx, api_for) -> None:
    api = api_for(make_ctx())
    ann = api.ok("POST", "/customers", {"email": "ann@example.org", "phone": "+371 2000-0001"}, status=201)
    assert ann["phone"] == "+37120000001"

    one = api.post("/customers", {"email": "bob@example.org", "phone": "+371 0000 0000"}, expect=422).json()
    assert one["error"]["field"] == "phone"
    assert "is not a valid phone number" in one["error"]["message"]
    batch = api.post("/customers", {"customers": [{"email": "c@example.org", "phone": "+37120000003"},
                                                  {"email": "d@example.org", "phone": "2000 0004"}]},
                     expect=422).json()
    assert batch["error"]["field"] == "customers[1].phone"
    assert "not in international form" in batch["error"]["message"]
    assert api.ok("GET", "/customers?email=c@example.org")["customers"] == []  # nothing half-applied


def test_with_a_default_region_national_numbers_are_read_and_bad_lines_reported(make_ctx, api_for) -> None:
    api = api_for(make_ctx(default_region="LV"))
    report = api.request("POST", "/customers/import", 200, headers={"Content-Type": "text/csv"},
                         content=b"email,phone\na@example.org,2000 0001\nb@example.org,12345\n"
                                 b"c@example.org,+44 20 7946 0958\n").json()
    assert report["created"] == 2
    assert [e["line"] for e in report["errors"]] == [3]
    assert report["errors"][0]["message"].startswith('"phone" \'12345\' is not a valid phone number')
    phones = {c["email"]: c["phone"] for c in api.ok("GET", "/customers")["customers"]}
    assert phones == {"a@example.org": "+37120000001", "c@example.org": "+442079460958"}


def test_an_http_gateway_reports_receipts_by_our_message_id_and_replies(make_ctx, api_for) -> None:
    gateway = Gateway()
    try:
        ctx = make_ctx(sms_url=gateway.url, sms_help_text="Shop: reply STOP to opt out.")
        api = api_for(ctx)
        api.ok("POST", "/customers", {"customers": [
            {"email": "a@example.org", "phone": "+37120000001"},
            {"email": "b@example.org", "phone": "+37120000002"}]}, status=201)
        segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
        template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": "Hi"}, status=201)
        mid = api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                           "template_id": template["id"],
                                           "quiet_hours": {"enabled": False}}, status=201)["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        make_worker(ctx).run_until_idle()
        first, second = sorted(gateway.received, key=lambda m: m["to"])

        delivered = api.ok("POST", "/events", {"type": "delivered", "message_id": first["message_id"]})
        again = api.ok("POST", "/events", {"type": "delivered", "message_id": first["message_id"]})
        failed = api.ok("POST", "/events", {"type": "undelivered", "message_id": second["message_id"]})
        assert (delivered["applied"], again["applied"], failed["applied"]) == (True, False, True)
        stats = api.ok("GET", f"/mailings/{mid}/stats")
        assert (stats["delivered"], stats["undelivered"], stats["sent"]) == (1, 1, 2)
        bounce = api.ok("POST", "/events", {"type": "bounce", "message_id": second["message_id"]})
        assert bounce["applied"] is False  # bounces are email's

        stop = api.ok("POST", "/events", {"type": "inbound", "from": "+371 2000 0001", "text": "STOP"})
        assert (stop["keyword"], stop["customers"], stop["from"], stop["reply"]) == (
            "stop", 1, "+37120000001", None)
        customer = api.ok("GET", "/customers?email=a@example.org")["customers"][0]
        assert customer["sms_status"] == "unsubscribed"
        assert api.ok("GET", f"/mailings/{mid}/stats")["unsubscribed"] == 1
        helped = api.ok("POST", "/events", {"type": "inbound", "from": "37120000002", "text": "Help"})
        assert helped["reply"] == "Shop: reply STOP to opt out."  # for the gateway to send
        nothing = api.ok("POST", "/events", {"type": "inbound", "from": "+37120000002", "text": "Thanks!"})
        assert (nothing["keyword"], nothing["customers"]) == (None, 0)
        bad = api.post("/events", {"type": "inbound", "from": "+37120000002"}, expect=422).json()
        assert bad["error"]["field"] == "text"
    finally:
        gateway.stop()


def test_an_sms_receipt_type_for_an_email_is_refused(make_ctx, api_for) -> None:
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(1))["mailing"]["id"]
    send(api, ctx, mid)
    with ctx.engine.connect() as conn:
        message_id = conn.execute(sa.select(messages.c.id).where(messages.c.mailing_id == mid)).scalar_one()
    refused = api.post("/events", {"type": "undelivered", "message_id": message_id}, expect=422).json()
    assert refused["error"]["field"] == "type"
    assert "an email that did not arrive is a bounce" in refused["error"]["message"]


def test_quiet_hours_of_a_mailing_are_checked_and_kept(make_ctx, api_for) -> None:
    api = api_for(make_ctx(sms_quiet_hours="22:00-08:00"))
    made = api.ok("POST", "/mailings", {"name": "S", "channel": "sms"}, status=201)
    assert made["quiet_hours"] == {"enabled": True, "window": "22:00-08:00"}
    changed = api.ok("PATCH", f"/mailings/{made['id']}", {"quiet_hours": {"window": "20:00-10:00"}})
    assert changed["quiet_hours"] == {"enabled": True, "window": "20:00-10:00"}
    bad = api.request("PATCH", f"/mailings/{made['id']}", 422,
                      json={"quiet_hours": {"window": "evening"}}).json()
    assert bad["error"]["field"] == "quiet_hours.window"
    email = api.request("POST", "/mailings", 422, json={"name": "E", "channel": "email",
                                                        "quiet_hours": {"enabled": True}}).json()
    assert email["error"]["field"] == "quiet_hours"
    assert api.ok("POST", "/mailings", {"name": "E2", "channel": "email"}, status=201)["quiet_hours"] is None


def test_the_preview_of_an_sms_shows_what_goes_and_warns_about_an_emoji(make_ctx, api_for) -> None:
    api = api_for(make_ctx(sms_url="smpp://u:p@127.0.0.1:1?source=Shop"))
    text = ("Spring sale: 20% off everything in the shop until Sunday {{ customer.first_name }} 🌷 "
            "https://shop.example.com/spring")
    template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": text}, status=201)
    shown = api.ok("POST", f"/templates/{template['id']}/preview", {})
    first, stop = shown["text"].split("\n")
    assert re.fullmatch(r"Spring sale: 20% off everything in the shop until Sunday Alex 🌷 "
                        r"http://tidings\.test/s/[A-Za-z0-9_-]{16}", first), first
    assert re.fullmatch(r"STOP: http://tidings\.test/s/[A-Za-z0-9_-]{16}", stop), stop
    assert shown["sms"] == {"encoding": "UCS-2", "characters": len(shown["text"]) + 1, "parts": 3,
                            "ucs2_because": "🌷", "warning": (
                                "The character 🌷 makes this text UCS-2, where a part holds 70 "
                                "characters instead of 160: it needs 3 parts instead of 1. Remove it "
                                "to send GSM-7.")}
    # the links of a preview lead nowhere
    token = first.rsplit("/", 1)[1]
    assert api.client.get(f"/s/{token}", follow_redirects=False).status_code == 404


def test_the_parts_of_a_whole_audience_are_counted_or_estimated_honestly(make_ctx, api_for,
                                                                        monkeypatch) -> None:
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"customers": [
        {"email": "a@example.org", "phone": "+37120000001", "first_name": "Anna"},
        {"email": "b@example.org", "phone": "+37120000002", "first_name": "Борис"},
        {"email": "c@example.org", "phone": "+37120000003", "first_name": "Cid"},
        {"email": "d@example.org", "phone": "+37120000003", "first_name": "Cid's twin"},
        {"email": "e@example.org", "phone": "+37120000005", "sms_status": "unsubscribed"}]}, status=201)
    segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
    text = "Hi {{ customer.first_name }}, " + "our autumn collection is in the shop now. " * 2
    template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": text}, status=201)
    mid = api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                       "template_id": template["id"]}, status=201)["id"]

    exact = api.ok("GET", f"/mailings/{mid}/sms-parts")

    # Anna and Cid: one GSM-7 part (under 160); Борис: UCS-2, 2 parts (over 70)
    assert {k: exact[k] for k in ("recipients", "rendered", "estimated", "parts", "gsm7", "ucs2",
                                  "parts_per_message", "failed", "warning")} == {
        "recipients": 3, "rendered": 3, "estimated": False, "parts": 4, "gsm7": 2, "ucs2": 1,
        "parts_per_message": {"min": 1, "max": 2}, "failed": 0, "warning": None}

    monkeypatch.setattr("tidings.services.sms_parts.EXACT_UP_TO", 2)
    monkeypatch.setattr("tidings.services.sms_parts.SAMPLE", 2)
    estimated = api.ok("GET", f"/mailings/{mid}/sms-parts")
    assert (estimated["estimated"], estimated["recipients"], estimated["rendered"]) == (True, 3, 2)
    assert estimated["parts"] in (3, 4, 5)  # the average of the two drawn, times 3

    email = api.ok("POST", "/mailings", {"name": "E", "segment_id": segment["id"]}, status=201)
    assert api.get(f"/mailings/{email['id']}/sms-parts", expect=409).json()["error"]["code"] == "not_sms"


def test_an_order_counts_for_an_sms_received_only_once_a_receipt_confirmed_it(make_ctx, api_for) -> None:
    gateway = Gateway()
    try:
        ctx = make_ctx(sms_url=gateway.url)
        api = api_for(ctx)
        api.ok("POST", "/customers", {"customers": [
            {"email": "a@example.org", "phone": "+37120000001"},
            {"email": "b@example.org", "phone": "+37120000002"}]}, status=201)
        segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
        template = api.ok("POST", "/templates", {"name": "s", "channel": "sms", "text": "Hi"}, status=201)
        mid = api.ok("POST", "/mailings", {"name": "SMS", "channel": "sms", "segment_id": segment["id"],
                                           "template_id": template["id"], "quiet_hours": {"enabled": False},
                                           "conversion": {"basis": "received"}}, status=201)["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        make_worker(ctx).run_until_idle()
        to_a = next(m for m in gateway.received if m["to"] == "+37120000001")
        api.ok("POST", "/events", {"type": "delivered", "message_id": to_a["message_id"]})

        later = (ctx.now() + timedelta(minutes=5)).isoformat()
        credited = api.ok("POST", "/orders", {"external_id": "o1", "customer_email": "a@example.org",
                                              "total": "10.00", "created_at": later}, status=201)
        not_credited = api.ok("POST", "/orders", {"external_id": "o2", "customer_email": "b@example.org",
                                                  "total": "20.00", "created_at": later}, status=201)

        assert (credited["mailing_id"], not_credited["mailing_id"]) == (mid, None)
        stats = api.ok("GET", f"/mailings/{mid}/stats")
        assert (stats["orders"], stats["revenue"], stats["conversion_rate"]) == (1, "10.00", 1.0)
    finally:
        gateway.stop()
