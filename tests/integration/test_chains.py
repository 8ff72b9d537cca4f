"""Chains of mailings through HTTP against a real SMTP server: conditions on the
previous step's recipients (opens and clicks made by fetching the real pixel
and link URLs out of the delivered messages), scheduling after a delay, the
interrupted-step rule, and the delete and copy rules."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from tests.builders import (
    MIMECAST,
    links_of,
    mail_to,
    make_template,
    send,
    stats,
    tracked_mailing,
    visit,
)
from tidings.services.sending import make_worker

EMAILS = [f"c{i}@example.org" for i in range(6)]


def add_step(api: Any, mailing_id: int, *, condition: str, delay_hours: float,
             name: str) -> dict[str, Any]:
    template = make_template(api, name=name, subject=name,
                             html=f'<p>{name}</p><a href="https://shop.example.com/{name}">Go</a>'
                                  '<a href="{{ unsubscribe_url }}">Unsubscribe</a>')
    return api.ok("POST", f"/mailings/{mailing_id}/steps",
                  {"template_id": template, "condition": condition, "delay_hours": delay_hours,
                   "name": name}, status=201)


def recipients(server: Any, mailing_id: int) -> list[str]:
    return sorted(m.rcpt for m in server.messages
                  if m.message["X-Tidings-Mailing"] == str(mailing_id))


def at(ctx: Any, moment: datetime) -> None:
    ctx.clock = lambda: moment


def status(api: Any, mailing_id: int) -> tuple[str, str | None]:
    mailing = api.ok("GET", f"/mailings/{mailing_id}")
    return mailing["status"], mailing["send_at"]


def test_a_three_step_chain_reminds_who_did_not_open_and_offers_to_who_clicked_the_reminder(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS, name="Launch")["mailing"]["id"]
    reminder = add_step(api, first, condition="not_opened", delay_hours=24, name="reminder")["id"]
    offer = add_step(api, first, condition="clicked", delay_hours=2, name="offer")["id"]
    start = ctx.now()
    at(ctx, start)

    send(api, ctx, first)

    assert recipients(smtp_server, first) == EMAILS
    launch = api.ok("GET", f"/mailings/{first}")
    assert launch["status"] == "sent"
    finished = datetime.fromisoformat(launch["finished_at"])
    assert status(api, reminder) == ("scheduled", (finished + timedelta(hours=24)).isoformat())
    assert status(api, offer) == ("draft", None)

    mail = {e: links_of(mail_to(smtp_server, e, first)) for e in EMAILS}
    assert visit(api, mail["c0@example.org"].pixel).status_code == 200
    assert visit(api, mail["c1@example.org"].clicks[0]).status_code == 302  # a click is an open
    visit(api, mail["c2@example.org"].pixel, headers={"User-Agent": MIMECAST})  # a scanner
    make_worker(ctx).run_until_idle()
    assert recipients(smtp_server, reminder) == []  # not before its time

    at(ctx, finished + timedelta(hours=24, minutes=1))
    make_worker(ctx).run_until_idle()

    assert recipients(smtp_server, reminder) == ["c2@example.org", "c3@example.org",
                                                 "c4@example.org", "c5@example.org"]
    reminded = api.ok("GET", f"/mailings/{reminder}")
    assert reminded["status"] == "sent"
    assert status(api, offer)[0] == "scheduled"
    mail = {e: links_of(mail_to(smtp_server, e, reminder)) for e in recipients(smtp_server, reminder)}
    visit(api, mail["c3@example.org"].clicks[0])
    visit(api, mail["c4@example.org"].pixel)
    visit(api, mail["c5@example.org"].list_unsubscribe, method="POST",
          content=b"List-Unsubscribe=One-Click")

    at(ctx, datetime.fromisoformat(reminded["finished_at"]) + timedelta(hours=2))
    make_worker(ctx).run_until_idle()

    assert recipients(smtp_server, offer) == ["c3@example.org"]
    assert [s["status"] for s in api.ok("GET", f"/mailings/{offer}")["steps"]] == ["sent"] * 3
    chain = stats(api, offer)["chain"]
    figures = ("sent", "delivered", "opened", "clicked", "unsubscribed")
    assert [[s[k] for k in figures] for s in chain["steps"]] == [
        [6, 6, 2, 1, 0],
        [4, 4, 2, 1, 1],
        [1, 1, 0, 0, 0],
    ]
    assert [chain["total"][k] for k in figures] == [11, 11, 4, 2, 1]
    assert chain["total"]["rates"]["opened"] == round(4 / 11, 4)
    assert stats(api, first)["chain"] == chain  # the chain is visible from every step


def test_an_interrupted_step_keeps_later_steps_in_draft_and_finishing_it_schedules_the_next(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:4])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=0, name="second")["id"]
    third = add_step(api, first, condition="all", delay_hours=1, name="third")["id"]
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 4})

    send(api, ctx, first)  # the second step starts at once, and runs out of quota

    stopped = api.ok("GET", f"/mailings/{second}")
    assert stopped["status"] == "interrupted"
    assert stopped["interrupt_reason"]["code"] == "quota_exhausted"
    assert status(api, third) == ("draft", None)

    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 10})
    api.ok("POST", f"/mailings/{second}/resume")
    make_worker(ctx).run_until_idle()

    done = api.ok("GET", f"/mailings/{second}")
    assert done["status"] == "sent"
    finished = datetime.fromisoformat(done["finished_at"])
    assert status(api, third) == ("scheduled", (finished + timedelta(hours=1)).isoformat())
    at(ctx, finished + timedelta(hours=1))
    make_worker(ctx).run_until_idle()
    assert recipients(smtp_server, third) == EMAILS[:4]


def test_resuming_a_step_interrupted_after_its_last_message_schedules_the_next(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url, reputation_min_sample=2)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:2])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=1, name="second")["id"]
    third = add_step(api, first, condition="all", delay_hours=5, name="third")["id"]
    send(api, ctx, first)
    assert api.ok("GET", f"/mailings/{second}")["status"] == "scheduled"
    for email in EMAILS[:2]:
        smtp_server.handler.reject[email] = "550 5.7.1 Blocked for now"

    at(ctx, ctx.now() + timedelta(hours=2))
    make_worker(ctx).run_until_idle()

    stopped = api.ok("GET", f"/mailings/{second}")
    assert stopped["status"] == "interrupted" and stopped["progress"]["queued"] == 0
    assert stopped["interrupt_reason"]["code"] == "reputation"
    assert status(api, third) == ("draft", None)

    resumed = api.ok("POST", f"/mailings/{second}/resume")  # nothing left to send

    assert resumed["status"] == "sent"
    assert status(api, third)[0] == "scheduled"


def test_a_later_step_is_scheduled_by_its_chain_not_before_the_step_before_it_is_sent(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:2])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=48, name="second")["id"]
    tomorrow = (ctx.now() + timedelta(days=1)).isoformat()

    early = api.post(f"/mailings/{second}/schedule", {"send_at": tomorrow}, expect=409)
    now = api.post(f"/mailings/{second}/send", expect=409)

    assert early.json()["error"]["code"] == "chain_step"
    assert now.json()["error"]["code"] == "chain_step"
    send(api, ctx, first)
    assert status(api, second)[0] == "scheduled"
    assert api.ok("POST", f"/mailings/{second}/cancel")["status"] == "draft"
    rescheduled = api.ok("POST", f"/mailings/{second}/schedule", {"send_at": tomorrow})
    assert rescheduled["status"] == "scheduled"


def test_a_step_without_statistics_is_deleted_with_every_later_step(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:2])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=24, name="second")["id"]
    third = add_step(api, first, condition="opened", delay_hours=24, name="third")["id"]
    send(api, ctx, first)
    assert status(api, second)[0] == "scheduled"

    api.request("DELETE", f"/mailings/{second}", 204)

    api.request("GET", f"/mailings/{second}", 404)
    api.request("GET", f"/mailings/{third}", 404)
    remaining = api.ok("GET", f"/mailings/{first}")
    assert [s["id"] for s in remaining["steps"]] == [first]
    assert stats(api, first)["sent"] == 2 and stats(api, first)["chain"] is None


def test_a_step_with_statistics_cannot_be_deleted(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:2])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=0, name="second")["id"]
    third = add_step(api, first, condition="clicked", delay_hours=24, name="third")["id"]
    send(api, ctx, first)  # the second step follows at once
    assert api.ok("GET", f"/mailings/{second}")["status"] == "sent"

    for mailing_id in (first, second):
        refused = api.request("DELETE", f"/mailings/{mailing_id}", 409).json()["error"]
        assert refused["code"] == "not_deletable"

    assert [s["id"] for s in api.ok("GET", f"/mailings/{first}")["steps"]] == [first, second, third]
    api.request("DELETE", f"/mailings/{third}", 204)
    assert [s["id"] for s in api.ok("GET", f"/mailings/{first}")["steps"]] == [first, second]


def test_copying_the_first_step_copies_the_chain_as_drafts(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:1])["mailing"]["id"]
    add_step(api, first, condition="not_opened", delay_hours=24, name="second")
    add_step(api, first, condition="clicked", delay_hours=3, name="third")
    send(api, ctx, first)

    copy = api.ok("POST", f"/mailings/{first}/copy", status=201)

    assert [(s["step"], s["status"], s["condition"], s["delay_hours"]) for s in copy["steps"]] == [
        (1, "draft", None, None), (2, "draft", "not_opened", 24), (3, "draft", "clicked", 3)]
    assert {s["id"] for s in copy["steps"]}.isdisjoint(
        s["id"] for s in api.ok("GET", f"/mailings/{first}")["steps"])


def test_a_not_converted_step_skips_who_ordered_after_the_step_before_whoever_got_the_credit(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, EMAILS[:4])
    first = data["mailing"]["id"]
    second = add_step(api, first, condition="not_converted", delay_hours=24, name="second")["id"]
    start = ctx.now()
    at(ctx, start)
    send(api, ctx, first)
    only_c2 = api.ok("POST", "/segments", {"name": "c2", "rules": {
        "field": "email", "op": "eq", "value": "c2@example.org"}}, status=201)
    other = api.ok("POST", "/mailings", {"name": "Other", "segment_id": only_c2["id"],
                                         "template_id": data["mailing"]["template_id"]},
                   status=201)["id"]
    at(ctx, start + timedelta(hours=1))
    send(api, ctx, other)
    orders = [("c0@example.org", start + timedelta(hours=2)),  # credited to the first step
              ("c1@example.org", start - timedelta(days=3)),  # bought before it: not converted
              ("c2@example.org", start + timedelta(hours=2))]  # credited to the other mailing
    credited = [
        api.ok("POST", "/orders", {"external_id": f"o{i}", "customer_email": email,
                                   "total": "10.00", "created_at": when.isoformat()},
               status=201)["mailing_id"]
        for i, (email, when) in enumerate(orders)
    ]
    assert credited == [first, None, other]

    at(ctx, start + timedelta(hours=25))
    make_worker(ctx).run_until_idle()

    assert recipients(smtp_server, second) == ["c1@example.org", "c3@example.org"]


def test_a_mailing_offers_only_the_actions_it_accepts_and_says_whether_it_can_be_deleted(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS[:2])["mailing"]["id"]
    second = add_step(api, first, condition="all", delay_hours=0, name="second")["id"]
    third = add_step(api, first, condition="clicked", delay_hours=24, name="third")["id"]

    def offered(mailing_id: int) -> tuple[str, list[str], bool]:
        mailing = api.ok("GET", f"/mailings/{mailing_id}")
        return mailing["status"], mailing["actions"], mailing["deletable"]

    assert offered(first) == ("draft", ["copy", "schedule", "send"], True)
    assert offered(second) == ("draft", ["copy"], True)  # its chain sends it
    assert {m["id"]: m["actions"] for m in api.ok("GET", "/mailings")["mailings"]} == {
        first: ["copy", "schedule", "send"], second: ["copy"], third: ["copy"]}

    send(api, ctx, first)  # the second step follows at once, the third is scheduled

    assert offered(first) == ("sent", ["copy"], False)
    assert offered(second) == ("sent", ["copy"], False)  # it has statistics
    # its chain scheduled it; since the step before it was sent, it may be rescheduled
    assert offered(third) == ("scheduled", ["cancel", "copy", "schedule"], True)
    for mailing_id in (first, second):
        api.request("DELETE", f"/mailings/{mailing_id}", 409)
    api.request("DELETE", f"/mailings/{third}", 204)


def test_a_new_delay_moves_a_scheduled_step_and_a_canceled_step_can_be_scheduled_again(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS, name="Launch")["mailing"]["id"]
    reminder = add_step(api, first, condition="all", delay_hours=24, name="reminder")["id"]
    send(api, ctx, first)
    finished = datetime.fromisoformat(api.ok("GET", f"/mailings/{first}")["finished_at"])
    assert status(api, reminder) == ("scheduled", (finished + timedelta(hours=24)).isoformat())

    api.ok("PATCH", f"/mailings/{reminder}", {"delay_hours": 48, "condition": "not_opened"})
    assert status(api, reminder) == ("scheduled", (finished + timedelta(hours=48)).isoformat())

    canceled = api.ok("POST", f"/mailings/{reminder}/cancel")
    assert canceled["status"] == "draft" and "schedule" in canceled["actions"]
    rearmed = api.ok("POST", f"/mailings/{reminder}/schedule")  # no time: its chain's time
    assert (rearmed["status"], rearmed["send_at"]) == (
        "scheduled", (finished + timedelta(hours=48)).isoformat())

    at(ctx, finished + timedelta(hours=48, minutes=1))
    make_worker(ctx).run_until_idle()
    assert recipients(smtp_server, reminder) == EMAILS  # nobody opened the launch


def test_a_step_whose_step_before_is_not_sent_cannot_be_scheduled(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    first = tracked_mailing(api, EMAILS, name="Launch")["mailing"]["id"]
    reminder = add_step(api, first, condition="all", delay_hours=24, name="reminder")
    assert "schedule" not in reminder["actions"]
    refused = api.request("POST", f"/mailings/{reminder['id']}/schedule", 409)
    assert refused.json()["error"]["code"] == "chain_step"
