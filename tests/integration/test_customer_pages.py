"""The pages customers see, through HTTP on both databases: they name the shop
and the masked address, undo an unsubscribe by mistake, offer a choice per
channel; and the shop's settings behind them (logo, default sender)."""

from __future__ import annotations

import re
from typing import Any

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, links_of, mail_to, send, stats, visit
from tidings.domain.actors import SYSTEM, Actor
from tidings.errors import Forbidden, InvalidInput
from tidings.services import shop
from tidings.store.tables import customers

ANN = {"email": "ann@example.org", "phone": "+37120000001", "first_name": "Ann"}
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 40


def statuses(ctx: Any, email: str) -> tuple[str, str]:
    with ctx.engine.connect() as conn:
        row = conn.execute(sa.select(customers.c.email_status, customers.c.sms_status)
                           .where(customers.c.email == email)).one()
    return row.email_status, row.sms_status


@pytest.fixture
def world(make_ctx: Any, api_for: Any, smtp_server: Any) -> dict[str, Any]:
    """Ann got a mailing "Autumn" from "Shop News"; her unsubscribe link."""
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    made = draft_mailing(api, [], extra=[ANN, {"email": "bob@example.org"}])
    api.ok("PATCH", f"/mailings/{made['mailing']['id']}", {"from_name": "Shop News"})
    send(api, ctx, made["mailing"]["id"])
    link = links_of(mail_to(smtp_server, ANN["email"], made["mailing"]["id"])).unsubscribe
    api.client.cookies.clear()
    return {"ctx": ctx, "api": api, "mailing": made["mailing"]["id"], "link": link,
            "ann": made["ids"][0]}


def test_the_page_names_the_shop_and_masks_the_address(world):
    ctx, api, link = world["ctx"], world["api"], world["link"]
    before = visit(api, link)
    shop.update_shop(ctx, {"name": "Riga Bikes", "postal_address": "Brīvības iela 1, Riga"},
                     actor=SYSTEM)
    shop.set_logo(ctx, PNG, actor=SYSTEM)

    page = visit(api, link)

    assert "from Shop News at <strong>a***@example.org</strong>" in before.text  # the sender's name
    assert "emails from Riga Bikes at <strong>a***@example.org</strong>" in page.text
    assert "Brīvības iela 1, Riga" in page.text and ANN["email"] not in page.text
    logo = re.search(r'<img src="(/shop/logo\?v=\d+)" alt="Riga Bikes">', page.text)
    assert logo is not None
    image = api.client.get(logo.group(1))
    assert (image.status_code, image.headers["content-type"], image.content) == (200, "image/png", PNG)
    assert image.headers["x-content-type-options"] == "nosniff"
    assert "img-src 'self'" in page.headers["content-security-policy"]
    assert "<script" not in page.text


def test_subscribe_again_undoes_an_unsubscribe_by_mistake(world):
    ctx, api, link = world["ctx"], world["api"], world["link"]
    done = visit(api, link, method="POST", content=b"List-Unsubscribe=One-Click",
                 headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert "Subscribe again" in done.text
    assert "<strong>a***@example.org</strong> will not get emails from Shop News" in done.text
    action = re.search(r'<form method="post" action="([^"]+)"', done.text)
    assert action is not None and action.group(1).endswith("/resubscribe")
    assert stats(api, world["mailing"])["unsubscribed"] == 1

    again = visit(api, link + "/resubscribe", method="POST")

    assert again.status_code == 200 and "You are subscribed again" in again.text
    assert statuses(ctx, ANN["email"]) == ("subscribed", "subscribed")
    assert stats(api, world["mailing"])["unsubscribed"] == 0
    visit(api, link + "/resubscribe", method="POST")  # twice changes nothing more
    assert stats(api, world["mailing"])["unsubscribed"] == 0


def test_subscribe_again_does_not_undo_a_complaint(world):
    ctx, api, link = world["ctx"], world["api"], world["link"]
    with ctx.engine.begin() as conn:
        conn.execute(customers.update().where(customers.c.email == ANN["email"])
                     .values(email_status="complained"))
    page = visit(api, link + "/resubscribe", method="POST")
    assert "Nothing changed" in page.text
    assert statuses(ctx, ANN["email"])[0] == "complained"


def test_the_preference_page_offers_each_channel_the_customer_has(world):
    ctx, api, link = world["ctx"], world["api"], world["link"]
    page = visit(api, link + "/preferences")
    assert 'name="email" value="yes" checked' in page.text
    assert 'name="sms" value="yes" checked' in page.text
    assert "+37•••••••01" in page.text and ANN["phone"] not in page.text

    saved = visit(api, link + "/preferences", method="POST", data={"email": "yes"})

    assert "Your choices are saved." in saved.text
    assert statuses(ctx, ANN["email"]) == ("subscribed", "unsubscribed")
    assert stats(api, world["mailing"])["unsubscribed"] == 0  # not the mailing's channel
    visit(api, link + "/preferences", method="POST", data={"sms": "yes"})
    assert statuses(ctx, ANN["email"]) == ("unsubscribed", "subscribed")
    assert stats(api, world["mailing"])["unsubscribed"] == 1
    visit(api, link + "/preferences", method="POST", data={"email": "yes", "sms": "yes"})
    assert statuses(ctx, ANN["email"]) == ("subscribed", "subscribed")
    assert stats(api, world["mailing"])["unsubscribed"] == 0


def test_a_bounced_channel_is_not_the_customer_s_to_switch_back_on(world):
    ctx, api, link = world["ctx"], world["api"], world["link"]
    with ctx.engine.begin() as conn:
        conn.execute(customers.update().where(customers.c.email == ANN["email"])
                     .values(email_status="bounced"))
    page = visit(api, link + "/preferences")
    assert 'name="email"' not in page.text and "could not be delivered" in page.text
    visit(api, link + "/preferences", method="POST", data={"email": "yes", "sms": "yes"})
    assert statuses(ctx, ANN["email"])[0] == "bounced"


def test_an_erased_customer_s_link_says_there_is_nothing_left(world):
    api = world["api"]
    api.ok("POST", f"/customers/{world['ann']}/erase")
    for path, method in (("", "GET"), ("/preferences", "GET"), ("", "POST")):
        page = visit(api, world["link"] + path, method=method)
        assert page.status_code == 200 and "We have no details for you any more" in page.text
        assert "a***@" not in page.text


def test_a_bad_token_gets_the_not_found_page_everywhere(world):
    api, link = world["api"], world["link"]
    bad = link[:-3] + ("AAA" if not link.endswith("AAA") else "BBB")
    for path, method in (("", "GET"), ("/preferences", "GET"), ("/preferences", "POST"),
                         ("/resubscribe", "POST")):
        assert visit(api, bad + path, method=method).status_code == 404
    assert statuses(world["ctx"], ANN["email"]) == ("subscribed", "subscribed")


# -- the settings behind them -----------------------------------------------------------


def test_a_logo_must_be_a_small_raster_image(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    assert api.client.get("/shop/logo").status_code == 404
    for data, words in ((b"<svg xmlns='http://www.w3.org/2000/svg'><script/></svg>", "PNG, JPEG"),
                        (b"", "Choose an image"), (PNG + b"\x00" * 600_000, "larger than 512 KB")):
        with pytest.raises(InvalidInput) as info:
            shop.set_logo(ctx, data, actor=SYSTEM)
        assert info.value.field == "logo" and words in info.value.message
    with pytest.raises(Forbidden):
        shop.update_shop(ctx, {"name": "x"}, actor=Actor(name="m@shop.example", role="manager"))


def test_the_shop_s_sender_becomes_the_default_of_new_mailings(make_ctx, api_for):
    ctx = make_ctx(default_from_email="env@shop.example", default_from_name="From the env")
    api = api_for(ctx)
    made = draft_mailing(api, ["c@example.org"])
    body = {"name": "x", "segment_id": made["segment"]["id"], "template_id": made["template"]["id"]}
    first = api.ok("POST", "/mailings", body, status=201)
    shop.update_shop(ctx, {"name": "Riga Bikes", "from_email": "news@RigaBikes.example"},
                     actor=SYSTEM)
    second = api.ok("POST", "/mailings", body, status=201)

    assert (first["from_email"], first["from_name"]) == ("env@shop.example", "From the env")
    assert (second["from_email"], second["from_name"]) == ("news@rigabikes.example", "Riga Bikes")
    with pytest.raises(InvalidInput) as info:
        shop.update_shop(ctx, {"from_email": "not an address"}, actor=SYSTEM)
    assert info.value.field == "from_email"
