"""The audit log: each change that matters names who made it, in the transaction of
the change; admins read it through the API (the page is in the browser tests)."""

from __future__ import annotations

import re
from datetime import timedelta

from fastapi.testclient import TestClient

from tests.builders import draft_mailing, numbered
from tidings.api.app import create_app
from tidings.domain.actors import SYSTEM
from tidings.services import audit, tokens, users


def entries(api, **query: object) -> list[tuple[str, str, str]]:  # type: ignore[no-untyped-def]
    found = api.ok("GET", "/audit" + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else ""))
    return [(e["actor"], e["action"], e["subject"]) for e in found["entries"]]


def test_who_sent_scheduled_canceled_resumed_deleted_and_topped_up_is_recorded(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    admin = api_for(ctx)
    shop = admin.as_token(tokens.create_token(ctx, name="shop", role="manager"))
    (shop_id,) = [t["id"] for t in tokens.list_tokens(ctx)]
    by_shop = f"API token “shop” (#{shop_id})"
    made = draft_mailing(shop, numbered(2))
    mid = made["mailing"]["id"]
    later = (ctx.now() + timedelta(days=1)).isoformat()

    shop.ok("POST", f"/mailings/{mid}/schedule", {"send_at": later})
    shop.ok("POST", f"/mailings/{mid}/cancel")
    shop.ok("POST", f"/mailings/{mid}/send")
    shop.ok("POST", f"/mailings/{mid}/cancel")
    shop.ok("POST", f"/mailings/{mid}/resume")
    copy = shop.ok("POST", f"/mailings/{mid}/copy", status=201)
    shop.request("DELETE", f"/mailings/{copy['id']}", 204)
    admin.ok("POST", "/quota/topup", {"channel": "email", "amount": 500})
    domain = shop.ok("POST", "/domains", {"domain": "shop.example"}, status=201)
    shop.request("DELETE", f"/domains/{domain['id']}", 403)  # managers may not
    admin.request("DELETE", f"/domains/{domain['id']}", 204)

    mailing = f"mailing {mid} “Autumn”"
    assert entries(admin) == [
        ("TIDINGS_ADMIN_TOKEN", "domain.delete", "shop.example"),
        ("TIDINGS_ADMIN_TOKEN", "quota.topup", "email quota"),
        (by_shop, "mailing.delete", f"mailing {copy['id']} “Copy of Autumn”"),
        (by_shop, "mailing.resume", mailing),
        (by_shop, "mailing.cancel", mailing),
        (by_shop, "mailing.send", mailing),
        (by_shop, "mailing.cancel", mailing),
        (by_shop, "mailing.schedule", mailing),
        ("system", "token.create", by_shop),
    ]
    (topup,) = admin.ok("GET", "/audit?action=quota.topup")["entries"]
    assert topup["detail"] == {"channel": "email", "amount": 500, "balance": 500}
    assert topup["did"] == "topped up" and topup["actor_role"] == "admin"


def test_a_refused_change_records_nothing(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx())
    unready = api.ok("POST", "/mailings", {"name": "No segment yet"}, status=201)

    api.post(f"/mailings/{unready['id']}/send", expect=422)
    api.request("DELETE", "/mailings/999", 404)
    api.post("/quota/topup", {"channel": "email", "amount": -5}, expect=422)

    assert entries(api) == []


def test_only_admins_read_the_audit_log_a_page_at_a_time(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    api = api_for(ctx)
    for amount in range(1, 6):
        api.ok("POST", "/quota/topup", {"channel": "sms", "amount": amount})
    manager = api.as_token(tokens.create_token(ctx, name="shop", role="manager"))

    assert manager.request("GET", "/audit", 403).json()["error"]["code"] == "forbidden"
    first = api.ok("GET", "/audit?limit=2&action=quota.topup")
    second = api.ok("GET", f"/audit?limit=2&action=quota.topup&before={first['next_before']}")
    third = api.ok("GET", f"/audit?limit=2&action=quota.topup&before={second['next_before']}")
    amounts = [[e["detail"]["amount"] for e in page["entries"]] for page in (first, second, third)]
    assert amounts == [[5, 4], [3, 2], [1]]
    assert third["next_before"] is None


def test_a_change_in_the_web_ui_is_recorded_under_the_persons_email(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(1))["mailing"]["id"]
    users.create_user(ctx, email="ann@shop.example", password="long enough", role="manager")
    with TestClient(create_app(ctx), follow_redirects=False) as browser:
        token = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/sign-in").text)
        assert token
        browser.post("/sign-in", data={"email": "ann@shop.example", "password": "long enough",
                                       "csrf_token": token.group(1)})
        fresh = re.search(r'name="csrf_token" value="([^"]+)"', browser.get("/mailings").text)
        assert fresh  # a new one since signing in
        sent = browser.post(f"/mailings/{mid}/send", data={"csrf_token": fresh.group(1)})
        assert sent.status_code == 303

    assert entries(api, action="mailing.send") == [("ann@shop.example", "mailing.send",
                                                    f"mailing {mid} “Autumn”")]


def test_another_part_of_tidings_records_in_its_own_transaction(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    try:
        with ctx.tx() as conn:
            audit.record(conn, SYSTEM, "customer.erase", "customer 7", {"customer_id": 7})
            raise RuntimeError("the erasure failed")
    except RuntimeError:
        pass
    with ctx.tx() as conn:
        audit.record(conn, SYSTEM, "customer.erase", "customer 8", {"customer_id": 8})

    found = audit.entries(ctx, actor=SYSTEM)["entries"]
    assert [(e["subject"], e["did"], e["detail"]) for e in found] == [
        ("customer 8", "erased", {"customer_id": 8})]
