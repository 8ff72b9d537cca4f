"""Bounces, complaints and delivery notices: by SMTP to the inbound listener that the
app runs on TIDINGS_BOUNCE_LISTEN, and by the webhook POST /events."""

from __future__ import annotations

import logging
import re
import smtplib
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tidings.domain.tracking import bounce_address
from tidings.feedback.inbound import BounceListener
from tidings.services import feedback
from tidings.services.sending import make_worker
from tidings.store.tables import customers, feedback_events, mailings, messages, suppressions

DOMAIN = "shop.example.com"
MAILING = {"subject": "Hi", "html": "<p>Hello {{ customer.first_name }}</p>", "from_email": f"news@{DOMAIN}"}
FIXTURES = Path(__file__).parent.parent / "fixtures" / "reports"
COUNTERS = (
    "delivered_count",
    "hard_bounced_count",
    "soft_bounced_count",
    "complained_count",
    "guard_sent",
    "guard_failed",
    "guard_bounced",
    "guard_complained",
)


# -- arranging ---------------------------------------------------------------------------


def send(ctx, api, mailing_id: int) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    """Send the mailing to the outbox; its messages, in id order."""
    api.ok("POST", f"/mailings/{mailing_id}/send")
    make_worker(ctx).run_until_idle()
    return rows(ctx, messages, messages.c.mailing_id == mailing_id)


def rows(ctx, table: sa.Table, *where: Any) -> list[dict[str, Any]]:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        return [
            dict(r._mapping)
            for r in conn.execute(sa.select(table).where(*where).order_by(*table.primary_key.columns))
        ]


def counters(ctx, mailing_id: int) -> dict[str, int]:  # type: ignore[no-untyped-def]
    row = rows(ctx, mailings, mailings.c.id == mailing_id)[0]
    return {name: row[name] for name in COUNTERS}


def customer(ctx, email: str) -> dict[str, Any]:  # type: ignore[no-untyped-def]
    return rows(ctx, customers, customers.c.email == email)[0]


def suppressed(ctx) -> dict[str, str]:  # type: ignore[no-untyped-def]
    return {r["address"]: r["reason"] for r in rows(ctx, suppressions)}


def snapshot(ctx) -> dict[str, list[dict[str, Any]]]:  # type: ignore[no-untyped-def]
    """Everything feedback may change."""
    return {t.name: rows(ctx, t) for t in (customers, messages, mailings, suppressions, feedback_events)}


def verp(ctx, message: dict[str, Any]) -> str:  # type: ignore[no-untyped-def]
    return bounce_address(ctx.secret, message["id"], domain=DOMAIN)


def message_id_header(message: dict[str, Any]) -> str:
    return f"<tidings.{message['mailing_id']}.{message['id']}@{DOMAIN}>"


def dsn(
    *,
    recipient: str,
    message_id: str,
    mailing_id: int,
    return_path: str = "",
    action: str = "failed",
    status: str = "5.1.1",
) -> bytes:
    """An RFC 3464 delivery status notification about one of our messages."""
    code = {"5": "550", "4": "451", "2": "250"}[status[0]]
    text = f"""From: MAILER-DAEMON@mx.example.org (Mail Delivery System)
To: {return_path or "bounces@" + DOMAIN}
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status; boundary="B0UND"

--B0UND
Content-Type: text/plain; charset=utf-8

Your message could not be delivered to one or more recipients.

--B0UND
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.example.org

Final-Recipient: rfc822; {recipient}
Original-Recipient: rfc822; {recipient}
Action: {action}
Status: {status}
Diagnostic-Code: smtp; {code} {status} <{recipient}>: mailbox problem

--B0UND
Content-Type: text/rfc822-headers

{"Return-Path: <" + return_path + ">" if return_path else "X-Nothing: here"}
From: Shop <news@{DOMAIN}>
To: {recipient}
Subject: Hi
Message-ID: {message_id}
X-Tidings-Mailing: {mailing_id}

--B0UND--
"""
    return text.replace("\n", "\r\n").encode()


def arf(*, recipient: str, message_id: str, mailing_id: int, return_path: str) -> bytes:
    """An RFC 5965 abuse report (a spam complaint) about one of our messages."""
    raw = (FIXTURES / "arf_abuse.eml").read_text()
    raw = raw.replace("bounces+c0m9l4n2@shop.example", return_path)
    raw = raw.replace("annoyed@yahoo.example", recipient)
    raw = raw.replace("<m43.c2001@shop.example>", message_id).replace(
        "X-Tidings-Mailing: 43", f"X-Tidings-Mailing: {mailing_id}"
    )
    return re.sub(r"\r?\n", "\r\n", raw).encode()


def deliver(listener: BounceListener, raw: bytes, *, to: str) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.sendmail("", [to], raw)


@pytest.fixture
def world(make_ctx, api_for):  # type: ignore[no-untyped-def]
    """A context with the bounce listener on a free port, its API, and a sent mailing of 6."""
    ctx = make_ctx(bounce_listen="127.0.0.1:0")
    api = api_for(ctx)
    listener = api.client.app.state.bounce_listener
    assert isinstance(listener, BounceListener)
    mid = draft_mailing(api, numbered(6), **MAILING)["mailing"]["id"]
    sent = send(ctx, api, mid)
    return ctx, api, listener, mid, sent


# -- by mail -----------------------------------------------------------------------------


def test_a_dsn_delivered_by_smtp_bounces_the_customer_and_counts_in_the_statistics(world):
    ctx, api, listener, mid, sent = world
    first = sent[0]

    deliver(
        listener,
        dsn(
            recipient=first["address"],
            message_id=message_id_header(first),
            mailing_id=mid,
            return_path=verp(ctx, first),
        ),
        to=verp(ctx, first),
    )

    assert listener.reports == 1 and listener.failed == 0
    assert customer(ctx, first["address"])["email_status"] == "bounced"
    assert suppressed(ctx) == {first["address"]: "bounced"}
    assert rows(ctx, messages, messages.c.id == first["id"])[0]["bounce"] == "hard"
    assert counters(ctx, mid) == {
        "delivered_count": 0,
        "hard_bounced_count": 1,
        "soft_bounced_count": 0,
        "complained_count": 0,
        "guard_sent": 6,
        "guard_failed": 0,
        "guard_bounced": 1,
        "guard_complained": 0,
    }
    stats = api.ok("GET", f"/mailings/{mid}/stats")
    assert stats["bounced"] == 1 and stats["sent"] == 6
    events = rows(ctx, feedback_events)
    assert [(e["type"], e["message_id"]) for e in events] == [("hard_bounce", first["id"])]
    assert '"applied": true' in events[0]["detail"] and '"status": "5.1.1"' in events[0]["detail"]
    assert customer(ctx, sent[1]["address"])["email_status"] == "subscribed"


def test_an_arf_complaint_delivered_by_smtp_marks_the_customer_complained_at_once(world):
    ctx, api, listener, mid, sent = world
    second = sent[1]

    deliver(
        listener,
        arf(
            recipient=second["address"],
            message_id=message_id_header(second),
            mailing_id=mid,
            return_path=verp(ctx, second),
        ),
        to=f"fbl@{DOMAIN}",
    )

    assert customer(ctx, second["address"])["email_status"] == "complained"
    assert suppressed(ctx) == {second["address"]: "complained"}
    assert rows(ctx, messages, messages.c.id == second["id"])[0]["complained_at"] is not None
    assert counters(ctx, mid)["complained_count"] == 1 and counters(ctx, mid)["guard_complained"] == 1
    assert api.ok("GET", f"/mailings/{mid}/stats")["complained"] == 1


def test_the_same_report_twice_counts_once(world):
    ctx, api, listener, mid, sent = world
    first = sent[0]
    report = dsn(recipient=first["address"], message_id=message_id_header(first), mailing_id=mid)

    deliver(listener, report, to=verp(ctx, first))
    after_one = counters(ctx, mid)
    deliver(listener, report, to=verp(ctx, first))

    assert counters(ctx, mid) == after_one and after_one["hard_bounced_count"] == 1
    events = rows(ctx, feedback_events)
    assert len(events) == 2 and '"applied": false' in events[1]["detail"]


def test_a_bounce_without_a_valid_token_counts_only_if_its_recipient_is_the_message_s(world):
    ctx, api, listener, mid, sent = world
    first, second = sent[0], sent[1]
    before = snapshot(ctx)

    # A guessed Message-ID with somebody else's address, and a forged token: both ignored.
    deliver(
        listener,
        dsn(recipient="victim@example.net", message_id=message_id_header(first), mailing_id=mid),
        to=f"bounces@{DOMAIN}",
    )
    deliver(
        listener,
        dsn(recipient=second["address"], message_id="<other@example.net>", mailing_id=mid),
        to=f"bounces+{'a' * 35}@{DOMAIN}",
    )
    assert snapshot(ctx) == before

    deliver(
        listener,
        dsn(recipient=first["address"].upper(), message_id=message_id_header(first), mailing_id=mid),
        to=f"bounces@{DOMAIN}",
    )
    assert customer(ctx, first["address"])["email_status"] == "bounced"


def test_junk_changes_nothing_and_the_listener_keeps_running(world, caplog):
    ctx, api, listener, mid, sent = world
    before = snapshot(ctx)
    caplog.set_level(logging.INFO, logger="tidings.feedback")

    for name in ("junk_auto_reply.eml", "junk_reply.eml", "arf_auth_failure.eml", "dsn_gmail_hard.eml"):
        deliver(
            listener,
            re.sub(rb"\r?\n", b"\r\n", (FIXTURES / name).read_bytes()),
            to=f"bounces+{sent[0]['id']}@{DOMAIN}",
        )
    deliver(listener, b"\x00\xff garbage \r\n\r\n\r\n", to=verp(ctx, sent[0]))
    deliver(listener, b"Subject: hello\r\n\r\nJust saying hi.\r\n", to=verp(ctx, sent[0]))

    assert snapshot(ctx) == before
    assert listener.received == 6 and listener.failed == 0
    assert any("dropped" in r.getMessage() for r in caplog.records)

    third = sent[2]
    deliver(
        listener,
        dsn(recipient=third["address"], message_id=message_id_header(third), mailing_id=mid),
        to=verp(ctx, third),
    )
    assert customer(ctx, third["address"])["email_status"] == "bounced"


def test_a_delayed_then_delivered_message_is_not_a_bounce(world):
    ctx, api, listener, mid, sent = world
    first = sent[0]
    header = message_id_header(first)

    deliver(
        listener,
        dsn(recipient=first["address"], message_id=header, mailing_id=mid, action="delayed", status="4.4.1"),
        to=verp(ctx, first),
    )
    assert rows(ctx, messages, messages.c.id == first["id"])[0]["bounce"] == "soft"
    assert customer(ctx, first["address"])["soft_bounces"] == 1
    deliver(
        listener,
        dsn(
            recipient=first["address"], message_id=header, mailing_id=mid, action="delivered", status="2.0.0"
        ),
        to=verp(ctx, first),
    )

    message = rows(ctx, messages, messages.c.id == first["id"])[0]
    assert message["bounce"] is None and message["delivered_at"] is not None
    person = customer(ctx, first["address"])
    assert (person["email_status"], person["soft_bounces"]) == ("subscribed", 0)
    counts = counters(ctx, mid)
    assert (counts["delivered_count"], counts["soft_bounced_count"]) == (1, 0)


# -- by webhook --------------------------------------------------------------------------


def test_webhook_events_have_the_same_effect_as_reports_by_mail(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(5), **MAILING)["mailing"]["id"]
    sent = send(ctx, api, mid)

    bounce = api.ok("POST", "/events", {"type": "bounce", "message_id": sent[0]["id"]})
    complaint = api.ok("POST", "/events", {"type": "complaint", "message_id": message_id_header(sent[1])})
    api.ok("POST", "/events", {"type": "delivered", "message_id": str(sent[2]["id"])})
    api.ok(
        "POST",
        "/events",
        {"type": "bounce", "message_id": sent[3]["id"], "hard": False, "detail": "mailbox full"},
    )
    api.ok("POST", "/events", {"type": "bounce", "message_id": verp(ctx, sent[4]), "hard": True})
    repeat = api.ok("POST", "/events", {"type": "bounce", "message_id": sent[0]["id"]})

    assert bounce == {"applied": True, "type": "bounce", "message_id": sent[0]["id"], "mailing_id": mid}
    assert complaint["applied"] is True and repeat["applied"] is False
    assert [customer(ctx, m["address"])["email_status"] for m in sent] == [
        "bounced",
        "complained",
        "subscribed",
        "subscribed",
        "bounced",
    ]
    assert customer(ctx, sent[3]["address"])["soft_bounces"] == 1
    assert [m["bounce"] for m in rows(ctx, messages, messages.c.mailing_id == mid)] == [
        "hard",
        None,
        None,
        "soft",
        "hard",
    ]
    assert counters(ctx, mid) == {
        "delivered_count": 1,
        "hard_bounced_count": 2,
        "soft_bounced_count": 1,
        "complained_count": 1,
        "guard_sent": 5,
        "guard_failed": 0,
        "guard_bounced": 2,
        "guard_complained": 1,
    }
    assert suppressed(ctx) == {
        sent[0]["address"]: "bounced",
        sent[1]["address"]: "complained",
        sent[4]["address"]: "bounced",
    }


def test_a_webhook_event_for_an_unknown_message_is_404_and_a_bad_body_422(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(1), **MAILING)["mailing"]["id"]
    first = send(ctx, api, mid)[0]
    before = snapshot(ctx)

    for unknown in (99999, "99999", f"<tidings.{mid + 1}.{first['id']}@{DOMAIN}>", "<x@example.net>"):
        error = api.post("/events", {"type": "bounce", "message_id": unknown}, expect=404).json()
        assert error["error"]["code"] == "message_not_found", unknown
    for body, field in (
        ({"message_id": first["id"]}, "type"),
        ({"type": "opened", "message_id": first["id"]}, "type"),
        ({"type": "bounce"}, "message_id"),
        ({"type": "bounce", "message_id": [1]}, "message_id"),
        ({"type": "bounce", "message_id": first["id"], "hard": "yes"}, "hard"),
        ({"type": "complaint", "message_id": first["id"], "hard": True}, "hard"),
        ({"type": "bounce", "message_id": first["id"], "extra": 1}, "extra"),
    ):
        error = api.post("/events", body, expect=422).json()["error"]
        assert (error["code"], error["field"]) == ("invalid_input", field), body
    assert api.post("/events", [1, 2], expect=422).json()["error"]["code"] == "invalid_input"
    assert snapshot(ctx) == before


# -- what feedback changes later ---------------------------------------------------------


def test_three_soft_bounces_in_a_row_bounce_the_customer_and_a_delivery_ends_the_run(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    first_mailing = draft_mailing(api, numbered(2), **MAILING)["mailing"]["id"]
    runs = []
    mailing_id = first_mailing
    for _ in range(5):
        sent = send(ctx, api, mailing_id)
        runs.append(sent)
        mailing_id = api.ok("POST", f"/mailings/{first_mailing}/copy", status=201)["id"]
    steady, flaky = "c000@example.org", "c001@example.org"

    def event(sent: list[dict[str, Any]], address: str, **body: Any) -> None:
        message = next(m for m in sent if m["address"] == address)
        api.ok("POST", "/events", {"message_id": message["id"], **body})

    event(runs[0], steady, type="bounce", hard=False)
    event(runs[1], steady, type="bounce", hard=False)
    event(runs[2], steady, type="delivered")
    event(runs[3], steady, type="bounce", hard=False)
    for run in runs[:2]:
        event(run, flaky, type="bounce", hard=False)
    assert customer(ctx, flaky)["email_status"] == "subscribed"
    event(runs[2], flaky, type="bounce", hard=False)

    assert (customer(ctx, steady)["email_status"], customer(ctx, steady)["soft_bounces"]) == ("subscribed", 1)
    assert (customer(ctx, flaky)["email_status"], customer(ctx, flaky)["soft_bounces"]) == ("bounced", 3)
    assert suppressed(ctx) == {flaky: "bounced"}
    later = send(ctx, api, api.ok("POST", f"/mailings/{first_mailing}/copy", status=201)["id"])
    assert [(m["address"], m["status"], m["skip_reason"]) for m in later] == [
        (steady, "sent", None),
        (flaky, "skipped", "bounced"),
    ]


def test_later_mailings_skip_complained_and_bounced_addresses_even_when_resubscribed(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(3), **MAILING)["mailing"]["id"]
    sent = send(ctx, api, mid)
    api.ok("POST", "/events", {"type": "bounce", "message_id": sent[0]["id"]})
    api.ok("POST", "/events", {"type": "complaint", "message_id": sent[1]["id"]})
    api.ok("POST", "/customers", {"email": sent[0]["address"], "email_status": "subscribed"}, status=201)

    later = send(ctx, api, api.ok("POST", f"/mailings/{mid}/copy", status=201)["id"])

    assert [(m["status"], m["skip_reason"]) for m in later] == [
        ("skipped", "bounced"),
        ("skipped", "complained"),
        ("sent", None),
    ]


def test_complaints_past_the_threshold_interrupt_the_mailing_with_the_rates(make_ctx, api_for):
    ctx = make_ctx(reputation_min_sample=5, max_complaint_rate=0.25, package_size=5, send_group=5)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(20), **MAILING)["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    worker = make_worker(ctx)
    assert worker.tick()  # one package of five goes out
    sent = rows(ctx, messages, messages.c.mailing_id == mid, messages.c.status == "sent")
    assert len(sent) == 5

    api.ok("POST", "/events", {"type": "complaint", "message_id": sent[0]["id"]})
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sending"  # 20% is within 25%
    api.ok("POST", "/events", {"type": "complaint", "message_id": sent[1]["id"]})

    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"] == {
        "code": "reputation",
        "message": "40.00% of recipients complained of spam (limit 25.00%). "
        "Check consent before an admin resumes it.",
    }
    worker.run_until_idle()
    assert api.ok("GET", f"/mailings/{mid}")["progress"]["sent"] == 5


def test_hard_bounces_by_mail_count_in_the_reputation_guard(make_ctx, api_for):
    ctx = make_ctx(reputation_min_sample=5, max_bounce_rate=0.5, package_size=5, send_group=5)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(20), **MAILING)["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).tick()
    sent = rows(ctx, messages, messages.c.mailing_id == mid, messages.c.status == "sent")

    for message in sent[:2]:
        feedback.apply_report(ctx, _report(ctx, message))
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sending"
    feedback.apply_report(ctx, _report(ctx, sent[2]))

    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["interrupt_reason"]["code"] == "reputation"
    assert stopped["interrupt_reason"]["message"].startswith("60.0% of 5 messages bounced")


def _report(ctx, message: dict[str, Any]):  # type: ignore[no-untyped-def]
    from tidings.feedback.reports import parse_report

    raw = dsn(
        recipient=message["address"], message_id=message_id_header(message), mailing_id=message["mailing_id"]
    )
    return parse_report(raw, envelope_recipients=[verp(ctx, message)])


def test_a_second_process_on_the_same_address_goes_on_without_a_listener(make_ctx, caplog):
    ctx = make_ctx(bounce_listen="127.0.0.1:0")
    first = feedback.start_listener(ctx)
    assert first is not None
    try:
        taken = make_ctx(bounce_listen=f"127.0.0.1:{first.port}")
        with caplog.at_level(logging.WARNING, logger="tidings.feedback"):
            assert feedback.start_listener(taken) is None
        assert "is taken" in caplog.text
        assert feedback.start_listener(make_ctx()) is None  # not configured
        assert feedback.apply_report(ctx, None) is False
    finally:
        first.stop()
