"""Engagement tracking through HTTP: the real pixel, link and unsubscribe URLs are
taken out of messages delivered to a real SMTP server and fetched with the
app's test client, on SQLite and PostgreSQL."""

from __future__ import annotations

import re
from typing import Any

import sqlalchemy as sa

from tests.builders import (
    BASE,
    MIMECAST,
    links_of,
    mail_to,
    send,
    stats,
    tracked_mailing,
    visit,
)
from tests.smtpserver import Received
from tidings.domain.tracking import sign_click, sign_message_token
from tidings.store.tables import customers, messages

GIF_MAGIC = b"GIF89a"


def engagement(stats_: dict[str, Any]) -> dict[str, int]:
    return {k: stats_[k] for k in ("sent", "delivered", "opened", "clicked", "unsubscribed")}


def message_row(ctx: Any, mailing_id: int, customer_id: int) -> dict[str, Any]:
    with ctx.engine.connect() as conn:
        return dict(conn.execute(sa.select(messages).where(
            messages.c.mailing_id == mailing_id, messages.c.customer_id == customer_id)
        ).one()._mapping)


# -- opens and clicks ---------------------------------------------------------------


def test_the_open_pixel_is_an_uncached_gif_and_counts_one_open_per_message(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"])
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    pixel = links_of(mail_to(smtp_server, "ann@example.org", mid)).pixel

    first, again = visit(api, pixel), visit(api, pixel)

    for response in (first, again):
        assert response.status_code == 200
        assert response.headers["content-type"] == "image/gif"
        assert response.content.startswith(GIF_MAGIC) and len(response.content) < 100
        assert "no-store" in response.headers["cache-control"]
    assert engagement(stats(api, mid)) == {"sent": 2, "delivered": 2, "opened": 1, "clicked": 0,
                                           "unsubscribed": 0}
    ann = message_row(ctx, mid, data["customers"]["ann@example.org"])
    bob = message_row(ctx, mid, data["customers"]["bob@example.org"])
    assert ann["opened_at"] is not None and bob["opened_at"] is None


def test_a_click_redirects_with_the_mailings_utm_tags_and_also_counts_as_an_open(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"], name="Spring Sale!")
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    sale, new = links_of(mail_to(smtp_server, "ann@example.org", mid)).clicks

    first = visit(api, sale)
    second = visit(api, new)

    assert first.status_code == 302
    assert first.headers["location"] == ("https://shop.example.com/sale?color=red&utm_source=tidings"
                                         "&utm_medium=email&utm_campaign=spring-sale#top")
    assert second.headers["location"] == ("https://shop.example.com/new?utm_source=tidings"
                                          "&utm_medium=email&utm_campaign=spring-sale")
    assert engagement(stats(api, mid)) == {"sent": 2, "delivered": 2, "opened": 1, "clicked": 1,
                                           "unsubscribed": 0}
    row = message_row(ctx, mid, data["customers"]["ann@example.org"])
    assert row["clicked_at"] is not None and row["opened_at"] == row["clicked_at"]


def test_utm_tags_of_the_mailing_are_merged_without_overwriting_the_links_own(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    html = '<a href="https://shop.example.com/p?utm_source=partner&size=9">P</a>'
    utm = {"utm_source": "newsletter", "utm_medium": "email", "utm_campaign": "may.2024",
           "utm_content": "hero"}
    mid = tracked_mailing(api, ["ann@example.org"], html=html, conversion={"utm": utm})["mailing"]["id"]
    send(api, ctx, mid)
    (link,) = links_of_html_only(mail_to(smtp_server, "ann@example.org", mid))

    assert visit(api, link).headers["location"] == (
        "https://shop.example.com/p?utm_source=partner&size=9&utm_medium=email"
        "&utm_campaign=may.2024&utm_content=hero")


def links_of_html_only(received: Received) -> list[str]:
    html = received.message.get_body(("html",)).get_content()
    return re.findall(rf"{re.escape(BASE)}/t/c/[A-Za-z0-9_-]+", html)


def test_with_utm_off_a_click_goes_to_the_link_as_written(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"], conversion={"utm": {"enabled": False}})["mailing"]["id"]
    send(api, ctx, mid)
    sale = links_of(mail_to(smtp_server, "ann@example.org", mid)).clicks[0]

    assert visit(api, sale).headers["location"] == "https://shop.example.com/sale?color=red#top"


def test_a_tampered_or_foreign_token_gets_a_404_page_never_a_redirect(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org"])
    mid = data["mailing"]["id"]
    send(api, ctx, mid)
    links = links_of(mail_to(smtp_server, "ann@example.org", mid))
    message_id = message_row(ctx, mid, data["customers"]["ann@example.org"])["id"]
    token = links.clicks[0].rsplit("/", 1)[1]
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    foreign = sign_click(b"someone-elses-secret", message_id, "https://evil.example/phish")
    foreign_open = sign_message_token(b"someone-elses-secret", message_id, "open")

    for path in (f"/t/c/{flipped}", f"/t/c/{foreign}", "/t/c/x", f"/u/{foreign_open}"):
        response = api.client.get(path, follow_redirects=False)
        assert response.status_code == 404, path
        assert "location" not in response.headers
        assert response.headers["content-type"].startswith("text/html")
        assert "evil.example" not in response.text
    pixel = api.client.get(f"/t/o/{foreign_open}")
    assert pixel.status_code == 404 and pixel.content.startswith(GIF_MAGIC)
    assert engagement(stats(api, mid))["opened"] == 0 and engagement(stats(api, mid))["clicked"] == 0


def test_scanners_and_head_requests_are_answered_but_count_nothing(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    send(api, ctx, mid)
    links = links_of(mail_to(smtp_server, "ann@example.org", mid))
    scanner = {"User-Agent": MIMECAST}

    scanned = [visit(api, url, headers=scanner) for url in links.clicks]
    probed = visit(api, links.clicks[0], method="HEAD")
    pixel = visit(api, links.pixel, headers=scanner)

    assert [r.status_code for r in scanned] == [302, 302] and probed.status_code == 302
    assert scanned[0].headers["location"].startswith("https://shop.example.com/sale?")
    assert pixel.status_code == 200 and pixel.content.startswith(GIF_MAGIC)
    assert engagement(stats(api, mid)) == {"sent": 1, "delivered": 1, "opened": 0, "clicked": 0,
                                           "unsubscribed": 0}
    visit(api, links.clicks[1])  # then the person clicks
    assert engagement(stats(api, mid))["clicked"] == 1


# -- unsubscribe --------------------------------------------------------------------


def email_status(ctx: Any, customer_id: int) -> str:
    with ctx.engine.connect() as conn:
        return conn.execute(sa.select(customers.c.email_status)
                            .where(customers.c.id == customer_id)).scalar_one()


def test_the_unsubscribe_link_asks_first_and_its_form_unsubscribes_at_once(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"])
    mid, ann = data["mailing"]["id"], data["customers"]["ann@example.org"]
    send(api, ctx, mid)
    link = links_of(mail_to(smtp_server, "ann@example.org", mid)).unsubscribe

    page = visit(api, link)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<form method="post"' in page.text and "Unsubscribe" in page.text
    assert email_status(ctx, ann) == "subscribed"  # looking is not unsubscribing

    done = visit(api, link, method="POST", data={"List-Unsubscribe": "One-Click"})
    assert done.status_code == 200 and "You are unsubscribed" in done.text
    assert email_status(ctx, ann) == "unsubscribed"
    assert engagement(stats(api, mid))["unsubscribed"] == 1
    assert "You are unsubscribed" in visit(api, link).text
    assert message_row(ctx, mid, ann)["unsubscribed_at"] is not None


def test_one_click_unsubscribe_from_the_header_needs_no_login_and_counts_once(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    data = tracked_mailing(api, ["ann@example.org", "bob@example.org"])
    mid, ann = data["mailing"]["id"], data["customers"]["ann@example.org"]
    send(api, ctx, mid)
    received = mail_to(smtp_server, "ann@example.org", mid)
    assert received.message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    url = links_of(received).list_unsubscribe
    api.client.cookies.clear()

    responses = [visit(api, url, method="POST", content=b"List-Unsubscribe=One-Click",
                       headers={"Content-Type": "application/x-www-form-urlencoded"})
                 for _ in range(2)]

    assert [r.status_code for r in responses] == [200, 200]
    assert email_status(ctx, ann) == "unsubscribed"
    assert email_status(ctx, data["customers"]["bob@example.org"]) == "subscribed"
    assert engagement(stats(api, mid))["unsubscribed"] == 1
    copy = api.ok("POST", f"/mailings/{mid}/copy", status=201)
    api.ok("POST", f"/mailings/{copy['id']}/send")
    assert api.ok("GET", f"/mailings/{copy['id']}")["progress"]["skipped"] == 1


# -- test send ----------------------------------------------------------------------


def test_a_test_send_delivers_one_message_that_is_not_counted_and_takes_one_from_the_quota(
    make_ctx, api_for, smtp_server
):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": 3})
    api.ok("POST", "/test-addresses", {"address": "qa@example.org"}, status=201)

    result = api.ok("POST", f"/mailings/{mid}/test", {"email": "QA@Example.org"})

    assert result["sent"] is True and result["email"] == "QA@example.org"
    (received,) = smtp_server.messages
    assert received.rcpt == "QA@example.org"
    assert received.message["X-Tidings-Test"] == "yes"
    assert received.message["X-Tidings-Mailing"] == str(mid)
    assert "Hello Alex" in received.message.get_body(("html",)).get_content()
    links = links_of(received)
    assert visit(api, links.clicks[0]).headers["location"] == (
        "https://shop.example.com/sale?color=red&utm_source=tidings&utm_medium=email"
        "&utm_campaign=spring#top")
    assert visit(api, links.pixel).status_code == 200
    assert visit(api, links.list_unsubscribe, method="POST").status_code == 200
    mailing = api.ok("GET", f"/mailings/{mid}")
    assert mailing["status"] == "draft" and mailing["progress"]["total"] == 0
    assert api.ok("GET", "/quota")["email"]["balance"] == 2
    assert stats(api, mid)["sent"] == 0 and stats(api, mid)["opened"] == 0


def test_a_test_send_to_a_customer_is_personalised_for_them(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    api.ok("POST", "/test-addresses", {"address": "ann@example.org"}, status=201)

    api.ok("POST", f"/mailings/{mid}/test", {"email": "ann@example.org"})

    (received,) = smtp_server.messages
    assert "Hello N0" in received.message.get_body(("html",)).get_content()


def test_a_test_send_needs_a_valid_address_and_reports_a_refusal(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    mid = tracked_mailing(api, ["ann@example.org"])["mailing"]["id"]
    smtp_server.handler.reject["nobody@example.org"] = "550 5.1.1 No such user"
    api.ok("POST", "/test-addresses", {"address": "nobody@example.org"}, status=201)

    missing = api.post(f"/mailings/{mid}/test", {}, expect=422).json()["error"]
    bad = api.post(f"/mailings/{mid}/test", {"email": "not an address"}, expect=422).json()
    refused = api.post(f"/mailings/{mid}/test", {"email": "nobody@example.org"}, expect=409)

    assert missing["field"] == "email" and bad["error"]["field"] == "email"
    assert refused.json()["error"]["code"] == "test_send_failed"
    assert "550" in refused.json()["error"]["message"]
    api.post("/mailings/999/test", {"email": "qa@example.org"}, expect=404)
    assert smtp_server.messages == []


def test_statistics_of_an_unknown_mailing_are_a_404(make_ctx, api_for):
    api = api_for(make_ctx())
    error = api.get("/mailings/999/stats", expect=404).json()["error"]
    assert error["code"] == "mailing_not_found"
