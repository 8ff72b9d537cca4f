"""The mailing process end to end: HTTP API, real database, real SMTP server on loopback."""

from __future__ import annotations

import collections
import threading
import time
from datetime import timedelta

import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tests.smtpserver import SmtpServer, free_port
from tidings.services.sending import make_worker, start_due
from tidings.store.tables import messages, suppressions


def in_flight(ctx) -> int:
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).where(messages.c.status == "sending")).scalar_one()


def assert_once_each(server: SmtpServer) -> None:
    counts = collections.Counter(server.recipients())
    assert [r for r, c in counts.items() if c > 1] == []


def test_send_now_delivers_every_reachable_customer_exactly_once(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = draft_mailing(api, numbered(10), extra=[
        {"email": "gone@example.org", "email_status": "unsubscribed"},
        {"email": "bounced@example.org", "email_status": "bounced"},
        {"external_id": "no-email", "first_name": "Phone only", "phone": "+37120000000"},
    ])
    mid = data["mailing"]["id"]

    sending = api.ok("POST", f"/mailings/{mid}/send")
    assert sending["status"] == "sending"
    assert sending["progress"]["total"] == 13 and sending["progress"]["skipped"] == 3
    make_worker(ctx).run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent" and done["status_label"] == "Sent"
    assert done["progress"] == {"total": 13, "sent": 10, "failed": 0, "skipped": 3, "unknown": 0,
                                "queued": 0, "percent": 100.0}
    assert sorted(smtp_server.recipients()) == [f"c{i:03d}@example.org" for i in range(10)]
    first = smtp_server.messages[0]
    msg = first.message
    assert msg["X-Tidings-Mailing"] == str(mid)
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert msg["List-Unsubscribe"].startswith("<http://tidings.test/u/")
    assert first.mail_from.startswith("bounces+") and first.mail_from.endswith("@shop.example.com")
    ids = {m.message["Message-ID"] for m in smtp_server.messages}
    assert len(ids) == 10
    html = msg.get_body(("html",)).get_content()
    assert "http://tidings.test/t/c/" in html and "http://tidings.test/t/o/" in html
    assert "https://shop.example.com/x" not in html


def test_a_server_without_pipelining_gets_one_command_at_a_time(make_ctx, api_for, smtp_server):
    smtp_server.handler.pipelining = False
    smtp_server.handler.reject["c001@example.org"] = "550 5.1.1 No such user"
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(4))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert (done["progress"]["sent"], done["progress"]["failed"]) == (3, 1)
    assert sorted(smtp_server.recipients()) == ["c000@example.org", "c002@example.org", "c003@example.org"]


def test_a_link_broken_after_the_body_leaves_that_message_unknown_and_never_resent(
    make_ctx, api_for, smtp_server
):
    smtp_server.handler.drop_after.add("c002@example.org")
    ctx = make_ctx(smtp_url=smtp_server.url, smtp_connections=1, smtp_retry_for=30)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(6))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["unknown"]) == (5, 1)
    assert sorted(smtp_server.recipients()) == [f"c{i:03d}@example.org" for i in range(6)]
    assert_once_each(smtp_server)


def test_send_unknown_sends_again_to_those_with_an_unknown_outcome_after_saying_so(
    make_ctx, api_for, smtp_server
):
    smtp_server.handler.drop_after.add("c002@example.org")
    ctx = make_ctx(smtp_url=smtp_server.url, smtp_connections=1, smtp_retry_for=30)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(6))["mailing"]["id"]
    sending = api.ok("POST", f"/mailings/{mid}/send")
    refused = api.post(f"/mailings/{mid}/send-unknown", expect=409).json()["error"]
    assert refused["code"] == "mailing_sending" and "being sent" in refused["message"]
    assert "send_unknown" not in sending["actions"]
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent" and done["progress"]["unknown"] == 1
    assert "send_unknown" in done["actions"]

    smtp_server.handler.drop_after.clear()
    again = api.ok("POST", f"/mailings/{mid}/send-unknown")
    assert again["status"] == "sending" and "send_unknown" not in again["actions"]
    assert (again["progress"]["unknown"], again["progress"]["queued"], again["progress"]["sent"]) == (0, 1, 5)
    make_worker(ctx).run_until_idle()

    final = api.ok("GET", f"/mailings/{mid}")
    assert final["status"] == "sent" and "send_unknown" not in final["actions"]
    assert final["progress"] | {"percent": 0} == {"total": 6, "sent": 6, "failed": 0, "skipped": 0,
                                                  "unknown": 0, "queued": 0, "percent": 0}
    counts = collections.Counter(smtp_server.recipients())
    assert counts["c002@example.org"] == 2  # the one whose outcome was unknown: twice, as warned
    assert [r for r, c in counts.items() if c > 1] == ["c002@example.org"]  # nobody else
    nothing = api.post(f"/mailings/{mid}/send-unknown", expect=409).json()["error"]
    assert nothing["code"] == "nothing_unknown"
    entries = api.ok("GET", "/audit")["entries"]
    assert [e["detail"]["unknown"] for e in entries if e["action"] == "mailing.send_unknown"] == [1]


def test_cancel_mid_mailing_finishes_the_package_and_resume_sends_the_rest_once(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=5, send_group=2, smtp_connections=1)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(12))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.gate.clear()  # hold the first group at the server
    worker = make_worker(ctx)
    thread = threading.Thread(target=worker.run_until_idle)
    thread.start()
    deadline = time.monotonic() + 10
    while in_flight(ctx) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)

    canceling = api.ok("POST", f"/mailings/{mid}/cancel")
    # The package in flight is still going out: the mailing says so and stays sending.
    assert canceling["status"] == "sending" and canceling["canceling"] is True
    assert canceling["status_label"].endswith(", canceling after this package")
    assert "cancel" not in canceling["actions"]
    again = api.request("POST", f"/mailings/{mid}/cancel", 409)
    assert again.json()["error"]["code"] == "already_canceling"
    smtp_server.handler.gate.set()
    thread.join(timeout=20)

    assert len(smtp_server.messages) == 5  # the whole package in flight, nothing more
    after = api.ok("GET", f"/mailings/{mid}")
    assert after["status"] == "canceled" and after["canceling"] is False
    assert after["progress"]["sent"] == 5 and after["progress"]["queued"] == 7

    resumed = api.ok("POST", f"/mailings/{mid}/resume")
    assert resumed["status"] == "sending"
    make_worker(ctx).run_until_idle()
    assert sorted(smtp_server.recipients()) == [f"c{i:03d}@example.org" for i in range(12)]
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"


def test_cancel_with_no_package_in_flight_shows_canceled_at_once(make_ctx, api_for):
    ctx = make_ctx(package_size=5)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(12))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")

    canceled = api.ok("POST", f"/mailings/{mid}/cancel")
    assert canceled["status"] == "canceled" and canceled["status_label"] == "Canceled"
    make_worker(ctx).run_until_idle()  # no package of a canceled mailing starts
    assert api.ok("GET", f"/mailings/{mid}")["progress"]["sent"] == 0


def test_canceled_shows_only_after_every_message_of_the_package_in_flight_is_counted(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=6, send_group=2, smtp_connections=1)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(12))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.gate.clear()
    thread = threading.Thread(target=make_worker(ctx).run_until_idle)
    thread.start()
    deadline = time.monotonic() + 10
    while in_flight(ctx) == 0:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    api.ok("POST", f"/mailings/{mid}/cancel")
    smtp_server.handler.gate.set()
    seen: list[tuple[str, int]] = []
    while thread.is_alive():
        m = api.ok("GET", f"/mailings/{mid}")
        seen.append((m["status"], m["progress"]["sent"]))
        time.sleep(0.005)
    thread.join()
    final = api.ok("GET", f"/mailings/{mid}")
    seen.append((final["status"], final["progress"]["sent"]))
    # Whenever Canceled was shown, the package's 6 messages were all counted as sent.
    assert all(sent == 6 for status, sent in seen if status == "canceled")
    assert seen[-1][0] == "canceled" and len(smtp_server.messages) == 6


def test_a_server_that_is_down_interrupts_with_technical_error_and_resume_completes(
    make_ctx, api_for
):
    port = free_port()
    ctx = make_ctx(smtp_url=f"smtp://127.0.0.1:{port}", smtp_retry_for=0, package_size=4)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(9))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()

    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "technical_error"
    assert f"127.0.0.1:{port}" in stopped["interrupt_reason"]["message"]
    assert stopped["status_label"].startswith("Interrupted: ")
    assert stopped["progress"]["sent"] == 0 and stopped["progress"]["queued"] == 9

    server = SmtpServer(port=port).start()
    try:
        api.ok("POST", f"/mailings/{mid}/resume")
        make_worker(ctx).run_until_idle()
        assert sorted(server.recipients()) == [f"c{i:03d}@example.org" for i in range(9)]
    finally:
        server.stop()
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"


def test_a_server_that_comes_back_within_the_retry_window_causes_no_interruption(make_ctx, api_for):
    port = free_port()
    ctx = make_ctx(smtp_url=f"smtp://127.0.0.1:{port}", smtp_retry_for=30)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(4))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    server = SmtpServer(port=port)
    timer = threading.Timer(1.0, server.start)
    timer.start()
    try:
        make_worker(ctx).run_until_idle()
        timer.join()
        assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
        assert len(server.recipients()) == 4
    finally:
        server.stop()


def test_quota_runs_out_and_a_topup_resumes(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=5)
    api = api_for(ctx)
    assert api.ok("GET", "/quota")["email"]["balance"] is None
    mid = draft_mailing(api, numbered(12))["mailing"]["id"]
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 6})
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()

    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "quota_exhausted"
    assert stopped["progress"]["sent"] == 5
    assert api.ok("GET", "/quota")["email"]["balance"] == 1  # fell by what was sent

    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 10})
    api.ok("POST", f"/mailings/{mid}/resume")
    make_worker(ctx).run_until_idle()
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
    assert api.ok("GET", "/quota")["email"]["balance"] == 4
    assert_once_each(smtp_server)
    assert len(smtp_server.messages) == 12


def test_only_an_admin_may_top_up(make_ctx, api_for):
    from tidings.services import tokens

    ctx = make_ctx()
    manager = tokens.create_token(ctx, name="m", role="manager")
    api = api_for(ctx, manager)
    response = api.post("/quota/topup", {"channel": "email", "amount": 5}, expect=403)
    assert response.json()["error"]["code"] == "forbidden"
    assert api.ok("GET", "/quota")["email"]["balance"] is None


def test_mass_rejections_interrupt_for_reputation_and_only_an_admin_resumes(
    make_ctx, api_for, smtp_server
):
    from tidings.services import tokens

    ctx = make_ctx(smtp_url=smtp_server.url, reputation_min_sample=5, max_bounce_rate=0.05,
                   send_group=5, package_size=100)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(20))["mailing"]["id"]
    for i in range(10):
        smtp_server.handler.reject[f"c{i:03d}@example.org"] = "550 5.1.1 No such user"
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()

    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "reputation"
    assert "100.0% of 5 messages" in stopped["interrupt_reason"]["message"]
    assert stopped["progress"]["failed"] == 5 and stopped["progress"]["sent"] == 0
    bounced = api.ok("GET", "/customers?email=c000@example.org")["customers"][0]
    assert bounced["email_status"] == "bounced"
    with ctx.engine.connect() as conn:
        reason = conn.execute(sa.select(suppressions.c.reason)
                              .where(suppressions.c.address == "c000@example.org")).scalar_one()
    assert reason == "bounced"

    manager = api.as_token(tokens.create_token(ctx, name="m", role="manager"))
    refused = manager.post(f"/mailings/{mid}/resume", expect=403)
    assert refused.json()["error"]["code"] == "admin_required"

    smtp_server.handler.reject.clear()
    api.ok("POST", f"/mailings/{mid}/resume")  # the admin cleaned the list: a fresh window
    make_worker(ctx).run_until_idle()
    final = api.ok("GET", f"/mailings/{mid}")
    assert final["status"] == "sent"
    assert final["progress"]["sent"] == 15 and final["progress"]["failed"] == 5
    assert_once_each(smtp_server)


def test_scheduled_mailing_locks_five_minutes_before_and_cancel_returns_it_to_draft(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(3))["mailing"]["id"]
    soon = (ctx.now() + timedelta(minutes=10)).isoformat()
    scheduled = api.ok("POST", f"/mailings/{mid}/schedule", {"send_at": soon})
    assert scheduled["status"] == "scheduled"
    assert scheduled["status_label"].startswith("Scheduled for ")
    api.ok("PATCH", f"/mailings/{mid}", {"name": "Renamed while there is time"})

    close = (ctx.now() + timedelta(minutes=4)).isoformat()
    api.ok("POST", f"/mailings/{mid}/schedule", {"send_at": close})
    locked = api.request("PATCH", f"/mailings/{mid}", 409, json={"name": "Too late"})
    assert locked.json()["error"]["code"] == "mailing_locked"

    draft = api.ok("POST", f"/mailings/{mid}/cancel")
    assert draft["status"] == "draft" and draft["send_at"] is None
    api.ok("PATCH", f"/mailings/{mid}", {"name": "Editable again"})


def test_scheduling_in_the_past_or_without_offset_is_refused(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(1))["mailing"]["id"]
    past = (ctx.now() - timedelta(minutes=1)).isoformat()
    err = api.post(f"/mailings/{mid}/schedule", {"send_at": past}, expect=422).json()["error"]
    assert err["code"] == "invalid_input" and "past" in err["message"]
    naive = api.post(f"/mailings/{mid}/schedule", {"send_at": "2030-01-01T10:00:00"}, expect=422)
    assert naive.json()["error"]["field"] == "send_at"
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "draft"


def test_the_scheduler_starts_a_due_mailing_once_even_with_several_workers(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(5))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/schedule", {"send_at": (ctx.now() + timedelta(minutes=6)).isoformat()})
    assert start_due(ctx) == 0  # not yet

    later = ctx.now() + timedelta(minutes=7)
    ctxs = [make_ctx(smtp_url=smtp_server.url) for _ in range(3)]
    for c in ctxs:
        c.clock = lambda: later
    results: list[int] = []
    threads = [threading.Thread(target=lambda c=c: results.append(start_due(c))) for c in ctxs]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == [0, 0, 1]
    make_worker(ctxs[0]).run_until_idle()
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
    assert len(smtp_server.messages) == 5


def test_no_editing_once_sending_started_and_copy_makes_a_new_draft(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(2))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    locked = api.request("PATCH", f"/mailings/{mid}", 409, json={"name": "x"}).json()["error"]
    assert locked["code"] == "mailing_locked"
    again = api.post(f"/mailings/{mid}/send", expect=409).json()["error"]
    assert again["code"] == "illegal_transition"
    copy = api.ok("POST", f"/mailings/{mid}/copy", status=201)
    assert copy["status"] == "draft" and copy["id"] != mid and copy["name"] == "Copy of Autumn"
    assert copy["progress"]["total"] == 0


def test_delete_takes_drafts_only(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    data = draft_mailing(api, numbered(2))
    mid = data["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    refused = api.request("DELETE", f"/mailings/{mid}", 409).json()["error"]
    assert refused["code"] == "not_deletable"
    copy = api.ok("POST", f"/mailings/{mid}/copy", status=201)
    api.request("DELETE", f"/mailings/{copy['id']}", 204)
    api.request("GET", f"/mailings/{copy['id']}", 404)


def test_unknown_ids_and_missing_tokens_get_the_error_envelope(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    missing = api.request("GET", "/mailings/999", 404).json()
    assert missing == {"error": {"code": "mailing_not_found", "message": "There is no mailing 999."}}
    anonymous = api.as_token("")
    assert anonymous.request("GET", "/mailings", 401).json()["error"]["code"] == "unauthorized"
    assert api.as_token("wrong").request("GET", "/mailings", 401).json()["error"]["code"] == "unauthorized"
    bad_json = api.client.post("/api/v1/mailings", content=b"{", headers={
        **api.headers, "Content-Type": "application/json"})
    assert bad_json.status_code in (400, 422) and "error" in bad_json.json()


def test_send_now_and_schedule_are_refused_when_nobody_can_receive_the_mailing(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    nobody = [{"email": "gone@example.org", "email_status": "unsubscribed"},
              {"external_id": "phone-only", "phone": "+37120000000"}]
    mid = draft_mailing(api, [], extra=nobody)["mailing"]["id"]

    refused = api.request("POST", f"/mailings/{mid}/send", 409).json()["error"]
    assert refused["code"] == "empty_audience" and "Nobody" in refused["message"]
    later = (ctx.now() + timedelta(days=1)).isoformat()
    refused = api.request("POST", f"/mailings/{mid}/schedule", 409, json={"send_at": later})
    assert refused.json()["error"]["code"] == "empty_audience"

    after = api.ok("GET", f"/mailings/{mid}")
    assert after["status"] == "draft" and after["progress"]["total"] == 0  # nothing half-applied
    assert after["progress"]["percent"] == 0


def test_a_scheduled_mailing_whose_audience_emptied_returns_to_draft_saying_why(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    data = draft_mailing(api, numbered(1))
    mid = data["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/schedule",
           {"send_at": (ctx.now() + timedelta(minutes=10)).isoformat()})
    api.ok("POST", "/customers", {"email": "c000@example.org", "email_status": "unsubscribed"},
           status=201)

    later = ctx.now() + timedelta(minutes=11)
    ctx.clock = lambda: later
    assert start_due(ctx) == 0
    back = api.ok("GET", f"/mailings/{mid}")
    assert back["status"] == "draft" and back["progress"]["total"] == 0
    assert "Nobody" in back["interrupt_reason"]["message"]
