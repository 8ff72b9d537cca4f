"""Who a test message may go to: the people who sign in and the test addresses an
admin keeps, never an unsubscribed or suppressed address; 50 an hour per actor;
each counted against the email quota. A leaked manager token is no spam relay."""

from __future__ import annotations

from datetime import timedelta

from tests.builders import tracked_mailing
from tidings.domain.actors import SYSTEM
from tidings.services import test_addresses, tokens, users
from tidings.store import feedback


def test_a_test_to_a_stranger_is_refused_and_nothing_is_sent(make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx).as_token(tokens.create_token(ctx, name="leaked", role="manager"))
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]

    refused = api.post(f"/mailings/{mid}/test", {"email": "victim@example.net"}, expect=422).json()

    assert refused["error"]["code"] == "test_address_not_allowed"
    assert refused["error"]["field"] == "email"
    assert smtp_server.messages == []


def test_a_test_goes_to_a_person_who_signs_in_and_to_a_listed_address(make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    users.create_user(ctx, email="boss@shop.example", password="long enough")
    listed = api.ok("POST", "/test-addresses", {"address": "QA@Shop.example"}, status=201)

    api.ok("POST", f"/mailings/{mid}/test", {"email": "boss@shop.example"})
    api.ok("POST", f"/mailings/{mid}/test", {"email": "qa@shop.example"})
    api.request("DELETE", f"/test-addresses/{listed['id']}", 204)
    api.post(f"/mailings/{mid}/test", {"email": "qa@shop.example"}, expect=422)

    assert [m.rcpt for m in smtp_server.messages] == ["boss@shop.example", "qa@shop.example"]
    assert listed["address"] == "qa@shop.example" and listed["added_by"] == "TIDINGS_ADMIN_TOKEN"


def test_no_test_goes_to_an_unsubscribed_or_suppressed_address_even_when_listed(
        make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"], extra=[
        {"email": "gone@example.org", "email_status": "unsubscribed"}])["mailing"]["id"]
    with ctx.tx() as conn:
        feedback.suppress(conn, "bounced@example.org", "bounced", now=ctx.now())
    for address in ("gone@example.org", "bounced@example.org"):
        test_addresses.add_address(ctx, address, actor=SYSTEM)

    gone = api.post(f"/mailings/{mid}/test", {"email": "gone@example.org"}, expect=422).json()["error"]
    bounced = api.post(f"/mailings/{mid}/test", {"email": "bounced@example.org"}, expect=422).json()["error"]

    assert gone["code"] == bounced["code"] == "test_address_suppressed"
    assert gone["message"] == "gone@example.org is unsubscribed: no mail goes to it, test messages included."
    assert "bounced@example.org is bounced" in bounced["message"]
    assert smtp_server.messages == []


def test_each_test_takes_one_message_of_the_quota_and_a_refused_one_is_given_back(
        make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    for address in ("qa@shop.example", "nobody@shop.example"):
        test_addresses.add_address(ctx, address, actor=SYSTEM)
    smtp_server.handler.reject["nobody@shop.example"] = "550 5.1.1 No such user"
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 2})

    api.ok("POST", f"/mailings/{mid}/test", {"email": "qa@shop.example"})
    api.post(f"/mailings/{mid}/test", {"email": "nobody@shop.example"}, expect=409)
    assert api.ok("GET", "/quota")["email"]["balance"] == 1
    api.ok("POST", f"/mailings/{mid}/test", {"email": "qa@shop.example"})
    exhausted = api.post(f"/mailings/{mid}/test", {"email": "qa@shop.example"}, expect=409).json()

    assert exhausted["error"]["code"] == "quota_exhausted"
    assert api.ok("GET", "/quota")["email"]["balance"] == 0
    assert [m.rcpt for m in smtp_server.messages] == ["qa@shop.example", "qa@shop.example"]


def test_fifty_tests_an_hour_per_actor(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    start = ctx.now()
    ctx.clock = lambda: start
    admin = api_for(ctx)
    shop = admin.as_token(tokens.create_token(ctx, name="shop", role="manager"))
    mid = tracked_mailing(shop, ["ann@example.org"])["mailing"]["id"]
    test_addresses.add_address(ctx, "qa@shop.example", actor=SYSTEM)

    for _ in range(test_addresses.PER_HOUR):
        shop.ok("POST", f"/mailings/{mid}/test", {"email": "qa@shop.example"})
    ctx.clock = lambda: start + timedelta(minutes=48)
    limited = shop.post(f"/mailings/{mid}/test", {"email": "qa@shop.example"}, expect=429)
    other = admin.post(f"/mailings/{mid}/test", {"email": "qa@shop.example"}, expect=200)
    ctx.clock = lambda: start + timedelta(hours=1, seconds=1)
    again = shop.post(f"/mailings/{mid}/test", {"email": "qa@shop.example"}, expect=200)

    assert limited.json()["error"] == {
        "code": "test_send_limit",
        "message": "50 test messages in an hour is the most one person or token may send: try again "
                   "in 12 minutes."}
    assert limited.headers["retry-after"] == "720"
    assert other.json()["sent"] is True and again.json()["sent"] is True


def test_only_admins_keep_the_list_of_test_addresses(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    admin = api_for(ctx)
    manager = admin.as_token(tokens.create_token(ctx, name="shop", role="manager"))
    added = admin.ok("POST", "/test-addresses", {"address": "qa@shop.example"}, status=201)

    assert manager.post("/test-addresses", {"address": "me@evil.example"}, expect=403)
    manager.request("DELETE", f"/test-addresses/{added['id']}", 403)
    again = admin.post("/test-addresses", {"address": "QA@shop.example"}, expect=409).json()["error"]
    bad = admin.post("/test-addresses", {"address": "not an address"}, expect=422).json()["error"]
    assert [a["address"] for a in manager.ok("GET", "/test-addresses")["test_addresses"]] == [
        "qa@shop.example"]
    assert again["code"] == "test_address_exists" and bad["field"] == "address"
