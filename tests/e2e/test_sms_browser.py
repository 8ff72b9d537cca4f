"""The SMS parts of the web UI in a real browser, at 1280 and 390 px: the
template's SMS preview (encoding, characters, parts, the emoji warning), the
Send now confirmation of an SMS mailing (parts for the whole audience) and
the status line of a mailing paused for quiet hours."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import WIDTHS, assert_fits, at_width, button, dialog, shot, sign_in, status_line
from tidings.services import audience, mailings
from tidings.services import templates as template_service
from tidings.services.sending import make_worker

pytestmark = pytest.mark.browser

EMOJI_TEXT = "Spring sale: 20% off everything in the shop until Sunday, come and see us soon 🌷"


def sms_mailing(ctx, text: str, *, people: list[dict] | None = None) -> dict:  # type: ignore[no-untyped-def]
    audience.upsert_customers(ctx, people or [
        {"email": "anna@example.com", "phone": "+37120000001", "first_name": "Anna"},
        {"email": "boris@example.com", "phone": "+37120000002", "first_name": "Борис"},
        {"email": "cid@example.com", "phone": "+37120000003", "first_name": "Cid"},
    ])
    segment = audience.create_segment(ctx, {"name": "Everyone", "rules": {}})
    template = template_service.create_template(ctx, {"name": "Flash sale", "channel": "sms", "text": text})
    return mailings.create(ctx, {"name": "Flash sale", "channel": "sms", "segment_id": segment["id"],
                                 "template_id": template["id"]})


@WIDTHS
def test_the_sms_preview_shows_encoding_characters_parts_and_warns_about_an_emoji(
        serve, page: Page, width: int) -> None:
    site = serve()
    template = template_service.create_template(site.ctx, {"name": "Flash sale", "channel": "sms",
                                                           "text": EMOJI_TEXT})
    at_width(page, width)
    sign_in(page, site, f"/templates/{template['id']}")

    summary = page.get_by_test_id("sms-summary")
    expect(summary).to_have_text("UCS-2, 81 characters, 2 parts of up to 67 characters")
    expect(page.get_by_role("status")).to_have_text(
        "The character 🌷 makes this text UCS-2, where a part holds 70 characters instead of 160: it "
        "needs 2 parts instead of 1. Remove it to send GSM-7.")
    assert_fits(page)
    shot(page, f"sms-preview-{width}")

    text = page.get_by_label("Text")
    text.fill(EMOJI_TEXT.replace(" 🌷", "") + " https://shop.example/spring")
    expect(summary).to_have_text(re.compile(r"^GSM-7, \d+ characters, 1 part$"))
    expect(page.get_by_test_id("sms-warning")).to_have_count(0)
    expect(page.get_by_test_id("preview-sms")).to_have_text(
        re.compile(r"come and see us soon http://tidings\.test/s/[A-Za-z0-9_-]{16}$"))
    assert_fits(page)


@WIDTHS
def test_send_now_of_an_sms_mailing_says_the_parts_for_the_whole_audience(
        serve, page: Page, width: int) -> None:
    site = serve()
    mailing = sms_mailing(site.ctx, "Hi {{ customer.first_name }}, our autumn collection is in the shop "
                                    "now, come and see it before Sunday.")
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")

    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    expect(confirm.get_by_test_id("sms-cost")).to_have_text(
        "4 SMS parts for the 3 phones: 2 in GSM-7 and 1 in UCS-2, 1 to 2 parts each. "
        "The SMS quota is charged per part.")
    expect(confirm).to_contain_text("Quiet hours 21:00 to 09:00: nobody gets it then in their own time zone")
    expect(confirm.get_by_test_id("sms-cost-warning")).to_have_count(0)
    assert_fits(page)
    shot(page, f"sms-send-now-{width}")


@WIDTHS
def test_send_now_warns_when_an_emoji_makes_the_sms_ucs2(serve, page: Page, width: int) -> None:
    site = serve()
    mailing = sms_mailing(site.ctx, EMOJI_TEXT, people=[
        {"email": "anna@example.com", "phone": "+37120000001"},
        {"email": "cid@example.com", "phone": "+37120000003"}])
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")

    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    expect(confirm.get_by_test_id("sms-cost")).to_contain_text("4 SMS parts for the 2 phones: 0 in GSM-7 "
                                                               "and 2 in UCS-2, 2 parts each.")
    expect(confirm.get_by_test_id("sms-cost-warning")).to_have_text(
        "The character 🌷 makes this text UCS-2, where a part holds 70 characters instead of 160: it "
        "needs 2 parts instead of 1. Remove it to send GSM-7. This concerns 2 of 2 messages.")
    assert_fits(page)


@WIDTHS
def test_a_mailing_paused_for_quiet_hours_says_until_when_in_the_managers_zone(
        serve, page: Page, width: int) -> None:
    site = serve()
    evening = datetime(2026, 1, 15, 20, 30, tzinfo=UTC)  # 22:30 in Riga, 15:30 in New York
    site.ctx.clock = lambda: evening
    mailing = sms_mailing(site.ctx, "Sale today", people=[
        {"email": "riga@example.com", "phone": "+37120000001"},
        {"email": "ny@example.com", "phone": "+37120000002", "attributes": {"timezone": "America/New_York"}}])
    mailings.send_now(site.ctx, mailing["id"])
    make_worker(site.ctx).run_until_idle()
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")

    expect(status_line(page)).to_have_text(
        "Being sent 50%, paused for quiet hours until 2026-01-16 09:00 Europe/Riga")
    assert_fits(page)


@WIDTHS
def test_quiet_hours_are_set_in_the_settings_of_an_sms_mailing(serve, page: Page, width: int) -> None:
    site = serve()
    mailing = sms_mailing(site.ctx, "Sale today")
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")
    settings = page.get_by_role("region", name="Settings")

    settings.get_by_label("Quiet from-until").fill("22:30-8")
    settings.get_by_role("button", name="Save changes").click()
    window = page.get_by_role("region", name="Settings").get_by_label("Quiet from-until")
    expect(window).to_have_attribute("aria-invalid", "true")
    said = "Quiet hours are two times of day like 21:00-09:00 (from-until), not '22:30-8'."
    expect(page.get_by_text(said)).to_be_visible()
    assert_fits(page)

    window.fill("22:30-08:00")
    page.get_by_role("region", name="Settings").get_by_label(
        "Do not send at night in each recipient's own time zone").uncheck()
    page.get_by_role("region", name="Settings").get_by_role("button", name="Save changes").click()
    expect(page.get_by_text("Changes saved.")).to_be_visible()
    assert mailings.get(site.ctx, mailing["id"])["quiet_hours"] == {"enabled": False, "window": "22:30-08:00"}
    expect(page.get_by_role("region", name="Settings").get_by_label(
        "Do not send at night in each recipient's own time zone")).not_to_be_checked()
