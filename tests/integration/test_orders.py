"""Orders and their attribution through HTTP, with revenue and rates checked to the cent."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa

from tests.builders import (
    links_of,
    mail_to,
    send,
    stats,
    tracked_mailing,
    visit,
)
from tidings.store.tables import mailings, messages


def at(ctx: Any, moment: datetime) -> None:
    ctx.clock = lambda: moment


def order(api: Any, external_id: str, email: str, total: str, when: datetime,
          expect: int = 201) -> Any:
    response = api.post("/orders", {"external_id": external_id, "customer_email": email,
                                     "total": total, "created_at": when.isoformat()},
                        expect=expect)
    return response.json()


def mailing_to(api: Any, name: str, segment_id: int, template_id: int,
               conversion: dict[str, Any] | None = None) -> int:
    body: dict[str, Any] = {"name": name, "segment_id": segment_id, "template_id": template_id}
    if conversion is not None:
        body["conversion"] = conversion
    return api.ok("POST", "/mailings", body, status=201)["id"]


def import_csv(api: Any, data: bytes, *, expect: int) -> Any:
    response = api.client.post("/api/v1/orders/import", content=data,
                               headers={**api.headers, "Content-Type": "text/csv"})
    assert response.status_code == expect, response.text
    return response


def bounce(ctx: Any, mailing_id: int, customer_id: int) -> None:
    """What the bounce listener records for a hard bounce (DSN) of one message."""
    with ctx.engine.begin() as conn:
        conn.execute(messages.update().where(messages.c.mailing_id == mailing_id,
                                             messages.c.customer_id == customer_id)
                     .values(bounce="hard"))
        conn.execute(mailings.update().where(mailings.c.id == mailing_id)
                     .values(hard_bounced_count=mailings.c.hard_bounced_count + 1))


def test_an_order_goes_to_the_last_mailing_that_reached_the_customer_within_its_window(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org"], conversion={"window_days": 30}, name="Spring")
    spring = data["mailing"]["id"]
    summer = mailing_to(api, "Summer", data["segment"]["id"], data["mailing"]["template_id"],
                        {"window_days": 3})
    start = ctx.now()
    at(ctx, start)
    send(api, ctx, spring)
    at(ctx, start + timedelta(days=1))
    send(api, ctx, summer)

    credited = [order(api, f"A{i}", "ann@example.org", "10.00", start + timedelta(days=days))
                for i, days in enumerate((-1, 0.5, 2, 4.5, 31))]

    assert [o["mailing_id"] for o in credited] == [None, spring, summer, spring, None]
    assert credited[2]["total"] == "10.00"
    assert credited[2]["message_id"] is not None
    assert stats(api, spring)["orders"] == 2 and stats(api, summer)["orders"] == 1


def test_revenue_and_rates_are_right_to_the_cent(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    emails = ["ann@example.org", "bob@example.org", "cy@example.org", "dee@example.org",
              "fay@example.org"]
    data = tracked_mailing(api, emails, conversion={"window_days": 7})
    api.ok("POST", "/customers", {"email": "eve@example.org", "email_status": "unsubscribed"},
           status=201)
    smtp_server.handler.reject["fay@example.org"] = "550 5.7.1 Refused"
    mid = data["mailing"]["id"]
    start = ctx.now()
    at(ctx, start)
    send(api, ctx, mid)
    bounce(ctx, mid, data["customers"]["dee@example.org"])
    visit(api, links_of(mail_to(smtp_server, "ann@example.org", mid)).pixel)
    visit(api, links_of(mail_to(smtp_server, "bob@example.org", mid)).clicks[0])

    for external_id, email, total, days in [
        ("1", "ann@example.org", "19.99", 1),
        ("2", "ann@example.org", "5.01", 2),
        ("3", "bob@example.org", "0.10", 3),
        ("4", "cy@example.org", "10.00", 8),  # after the window
        ("5", "dee@example.org", "7.00", 1),  # the message bounced: it did not reach her
    ]:
        order(api, external_id, email, total, start + timedelta(days=days))

    figures = stats(api, mid)
    assert {k: figures[k] for k in ("sent", "delivered", "failed", "bounced", "opened", "clicked",
                                    "unsubscribed", "complained", "orders", "revenue",
                                    "conversion_rate")} == {
        "sent": 4, "delivered": 3, "failed": 1, "bounced": 1, "opened": 2, "clicked": 1,
        "unsubscribed": 0, "complained": 0, "orders": 3, "revenue": "25.10",
        "conversion_rate": 0.6667,
    }
    assert figures["audience"] == 6 and figures["skipped"] == 1
    assert figures["revenue_per_recipient"] == "8.37"
    assert figures["rates"] == {"sent": 0.6667, "delivered": 0.75, "failed": 0.2,
                                "opened": 0.6667, "clicked": 0.3333, "click_to_open": 0.5,
                                "unsubscribed": 0.0, "complained": 0.0, "conversion": 0.6667}
    ann = api.ok("GET", f"/customers/{data['customers']['ann@example.org']}")
    assert ann["orders_count"] == 2 and ann["orders_total"] == "25.00"
    assert datetime.fromisoformat(ann["last_order_at"]) == start + timedelta(days=2)
    cy = api.ok("GET", f"/customers/{data['customers']['cy@example.org']}")
    assert cy["orders_count"] == 1 and cy["orders_total"] == "10.00"


def test_many_small_orders_add_up_exactly(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org"])
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    for i in range(30):
        order(api, f"P{i}", "ann@example.org", "0.10", ctx.now() + timedelta(minutes=i + 1))

    assert stats(api, mid)["revenue"] == "3.00"
    assert api.ok("GET", f"/customers/{data['customers']['ann@example.org']}")["orders_total"] \
        == "3.00"


def test_the_opened_basis_credits_only_customers_who_opened_before_ordering(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"], conversion={"basis": "opened"})
    mid = data["mailing"]["id"]
    start = ctx.now()
    at(ctx, start)
    send(api, ctx, mid)
    at(ctx, start + timedelta(hours=1))
    visit(api, links_of(mail_to(smtp_server, "ann@example.org", mid)).pixel)

    ann = order(api, "A", "ann@example.org", "12.00", start + timedelta(hours=2))
    bob = order(api, "B", "bob@example.org", "12.00", start + timedelta(hours=2))
    early = order(api, "C", "ann@example.org", "12.00", start + timedelta(minutes=30))

    assert (ann["mailing_id"], bob["mailing_id"], early["mailing_id"]) == (mid, None, None)
    assert stats(api, mid)["revenue"] == "12.00"


def test_a_repeated_order_is_a_conflict_and_changes_nothing(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org"])
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    when = ctx.now() + timedelta(hours=1)
    first = order(api, "A-1", "ann@example.org", "9.99", when)

    again = order(api, "A-1", "ann@example.org", "9.99", when, expect=409)

    assert again["error"]["code"] == "duplicate_order"
    assert api.ok("GET", f"/orders/{first['id']}") == first
    assert stats(api, mid)["orders"] == 1 and stats(api, mid)["revenue"] == "9.99"
    ann = api.ok("GET", f"/customers/{data['customers']['ann@example.org']}")
    assert ann["orders_count"] == 1 and ann["orders_total"] == "9.99"


def test_an_order_of_an_unknown_customer_or_with_a_bad_total_is_refused(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    tracked_mailing(api, ["ann@example.org"])
    when = ctx.now().isoformat()

    unknown = order(api, "X", "nobody@example.org", "1.00", ctx.now(), expect=422)
    by_id = api.post("/orders", {"external_id": "Y", "customer_id": 999, "total": 1,
                                 "created_at": when}, expect=422).json()
    cents = order(api, "Z", "ann@example.org", "1.001", ctx.now(), expect=422)
    naive = api.post("/orders", {"external_id": "W", "customer_email": "ann@example.org",
                                 "total": 1, "created_at": "2024-05-01T10:00:00"},
                     expect=422).json()

    assert unknown["error"]["field"] == "customer_email"
    assert by_id["error"]["field"] == "customer_id"
    assert cents["error"]["field"] == "total" and naive["error"]["field"] == "created_at"
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM orders")).scalar_one() == 0


def test_an_orders_csv_keeps_good_lines_and_reports_each_bad_one(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"])
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    order(api, "EXISTING", "bob@example.org", "1.00", ctx.now() + timedelta(hours=1))
    soon = (ctx.now() + timedelta(hours=2)).isoformat()
    bob_id = data["customers"]["bob@example.org"]
    csv = (
        "external_id,customer_email,customer_id,total,created_at,utm_source\n"
        f"A1,ann@example.org,,19.99,{soon},tidings\n"
        f"A2,,{bob_id},0.01,{soon},\n"
        f"A3,ann@example.org,,abc,{soon},\n"
        f"A4,ghost@example.org,,5.00,{soon},\n"
        f"EXISTING,bob@example.org,,5.00,{soon},\n"
        f"A1,ann@example.org,,19.99,{soon},\n"
        "A5,ann@example.org,,5.00,2024-01-01T00:00:00Z,\n"
    )

    result = import_csv(api, csv.encode(), expect=200).json()

    assert result["created"] == 3 and result["attributed"] == 2
    assert [e["line"] for e in result["errors"]] == [4, 5, 6, 7]
    assert "total" in result["errors"][0]["message"]
    assert "ghost@example.org" in result["errors"][1]["message"]
    assert "EXISTING" in result["errors"][2]["message"] and "A1" in result["errors"][3]["message"]
    figures = stats(api, mid)
    assert figures["orders"] == 3 and figures["revenue"] == "21.00"
    empty = import_csv(api, b"", expect=422)
    assert empty.json()["error"]["code"] == "invalid_input"
    headless = import_csv(api, b"external_id,total\nA,1\n", expect=422)
    assert "created_at" in headless.json()["error"]["message"]
