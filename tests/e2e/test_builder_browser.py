# ruff: noqa: F811  (the fixtures of test_browser are imported, and helpers name their page "page")
"""The email builder and the pre-send checklist in a real browser, at 1280 and 390 px.

A manager builds an email from blocks (typing, formatting, uploading an image,
adding, moving, duplicating, deleting, undoing, personalising), saves it, checks
and sends it to a real SMTP server on loopback; the message received is then
opened in Chromium at both widths, where its blocks must still be in order and
nothing may stick out. The checklist blocks a send from an unverified domain.
Uses the fixtures of :mod:`tests.e2e.test_browser` (uvicorn in a thread, Chromium).
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e.test_browser import (  # noqa: F401  (fixtures)
    EMAIL,
    ROOT,
    SCREENSHOTS,
    WIDTHS,
    assert_fits,
    at_width,
    browser,
    button,
    dialog,
    page,
    serve,
    shot,
    sign_in,
)
from tests.unit.test_media import png
from tidings.services import audience, mailings
from tidings.services import templates as template_service

pytestmark = pytest.mark.browser

BUILD = ROOT / "build" / "screenshots"  # pictures for looking at, never committed
#: What the built email says, block by block, top to bottom.
IN_ORDER = ["Spring has come, Ann", "New shoes are in", "Red shoes", "See the shoes", "Main Street 1",
            "Unsubscribe"]


def block(page: Page, number: int) -> Any:
    return page.locator("li.block").nth(number - 1)


def titles(page: Page) -> list[str]:
    return [str(t) for t in page.locator("li.block .block-title").all_inner_texts()]


def add_block(page: Page, kind: str) -> None:
    page.get_by_label("Block to add").select_option(label=kind)
    page.get_by_role("button", name="Add block").click()


def positions(page: Page, phrases: list[str]) -> list[float]:
    """Where each phrase starts on the page (its text node's top), or -1."""
    return [float(y) for y in page.evaluate("""phrases => phrases.map(phrase => {
        const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
        for (let node = walker.nextNode(); node; node = walker.nextNode()) {
          if (node.textContent.includes(phrase)) {
            const range = document.createRange();
            range.selectNodeContents(node);
            const box = range.getBoundingClientRect();
            if (box.height > 0) { return box.top + window.scrollY; }
          }
        }
        const image = [...document.images].find(i => i.alt === phrase);
        return image ? image.getBoundingClientRect().top + window.scrollY : -1;
    })""", phrases)]


@WIDTHS
def test_a_manager_builds_an_email_from_blocks_and_it_arrives_in_order(
        serve, page: Page, smtp_server, width: int) -> None:  # noqa: F811
    site = serve(with_user=True, with_worker=True, smtp_url=smtp_server.url)
    audience.upsert_customers(site.ctx, [{"email": "ann@example.com", "first_name": "Ann",
                                          "attributes": {"city": "Riga"}}])
    segment = audience.create_segment(site.ctx, {"name": "Everyone", "rules": {}})
    # TIDINGS_PUBLIC_URL is where the site really answers (its port is known only now), so
    # uploaded images load in the previews and in the message received.
    site.ctx.settings = site.ctx.settings.model_copy(update={"public_url": site.url})
    at_width(page, width)
    sign_in(page, site, "/templates/new")
    expect(page.get_by_role("link", name="Blank")).to_have_attribute("aria-current", "true")
    assert titles(page) == ["Block 1: Heading", "Block 2: Text", "Block 3: Footer"]
    page.get_by_label("Name", exact=True).fill("Spring news")
    page.get_by_label("Subject").fill("Spring is here")
    page.get_by_label("Preheader").fill("New shoes, and a sale")

    heading = block(page, 1).get_by_label("Heading", exact=True)
    heading.fill("Spring has come, ")
    page.get_by_label("Customer detail").select_option(label="First name")
    page.get_by_label("If the customer has none, show").fill("there")
    heading.press("End")
    page.get_by_role("button", name="Insert").click()
    expect(heading).to_have_value('Spring has come, {{ customer.first_name or "there" }}')

    text = page.get_by_role("textbox", name="Text of block 2")
    text.fill("New shoes are in")
    text.press("Control+A")
    page.get_by_role("button", name="Bold").first.click()
    footer = block(page, 3)
    footer.get_by_label("The shop's address", exact=True).fill("The Shoe Shop\nMain Street 1")

    add_block(page, "Button")  # goes above the footer
    assert titles(page)[2:] == ["Block 3: Button", "Block 4: Footer"]
    expect(block(page, 3).get_by_label("Label", exact=True)).to_be_focused()
    block(page, 3).get_by_label("Label", exact=True).fill("See the shoes")
    block(page, 3).get_by_label("Link", exact=True).fill("https://shop.example/shoes")

    add_block(page, "Image")
    image = block(page, 4)
    image.get_by_label("Upload an image", exact=True).set_input_files(
        files=[{"name": "red shoes.png", "mimeType": "image/png", "buffer": png(320, 200)}])
    expect(image.get_by_role("status")).to_have_text("Uploaded red-shoes.png (320 × 200 pixels).")
    expect(image.get_by_label("Image address", exact=True)).to_have_value(
        re.compile(r"/media/\d+-red-shoes\.png$"))
    expect(image.get_by_label("Width in pixels (0: the full width)", exact=True)).to_have_value("320")
    image.get_by_label("Description, for those who cannot see it", exact=True).fill("Red shoes")
    button(page, "Move up block 4 (Image)").click()
    assert titles(page) == ["Block 1: Heading", "Block 2: Text", "Block 3: Image", "Block 4: Button",
                            "Block 5: Footer"]
    expect(button(page, "Move up block 3 (Image)")).to_be_focused()

    button(page, "Duplicate block 4 (Button)").click()
    assert len(titles(page)) == 6
    expect(block(page, 5).get_by_label("Label", exact=True)).to_have_value("See the shoes")
    button(page, "Delete block 1 (Heading)").click()
    assert titles(page)[0] == "Block 1: Text"
    page.get_by_role("button", name="Undo").click()  # the heading comes back, where it was
    expect(block(page, 1).get_by_label("Heading", exact=True)).to_have_value(
        'Spring has come, {{ customer.first_name or "there" }}')
    page.get_by_role("button", name="Undo").click()  # and the copy of the button goes
    assert titles(page) == ["Block 1: Heading", "Block 2: Text", "Block 3: Image", "Block 4: Button",
                            "Block 5: Footer"]

    page.get_by_label("For customer").fill("ann@example.com")
    page.get_by_label("For customer").press("Escape")  # closes the list of suggestions
    desktop = page.frame_locator("iframe[title='The email on a desktop']")
    phone = page.frame_locator("iframe[title='The email on a phone, 390 pixels wide']")
    for frame in (desktop, phone):
        expect(frame.locator("h1")).to_have_text("Spring has come, Ann")
        expect(frame.locator("strong", has_text="New shoes are in")).to_be_visible()
    expect(page.get_by_test_id("preview-preheader")).to_have_text("New shoes, and a sale")
    expect(page.get_by_test_id("preview-warnings")).to_have_count(0)
    assert_fits(page)
    if width == 1280:
        for frame in (desktop, phone):
            expect(frame.locator('img[alt="Red shoes"]')).to_have_js_property("naturalWidth", 320)
        page.locator("#preview").scroll_into_view_if_needed()
        page.wait_for_timeout(1500)  # let the previews paint before the picture
        shot(page, "template-builder")
        page.set_viewport_size({"width": 1280, "height": 1500})  # the previews whole, painted
        page.locator(".previews").evaluate("e => e.scrollIntoView()")
        page.wait_for_timeout(1000)
        page.screenshot(path=str(SCREENSHOTS / "template-previews.png"),
                        clip=page.locator(".previews").bounding_box())
        at_width(page, width)
        page.evaluate("window.scrollTo(0, 0)")  # a click right after these pictures can go astray

    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status").first).to_have_text("Template Spring news saved.")
    saved = template_service.list_templates(site.ctx)[0]
    assert saved["editor"] == "blocks"
    assert [b["type"] for b in saved["blocks"]] == ["heading", "text", "image", "button", "footer"]
    assert saved["blocks"][1]["html"] == "<p><strong>New shoes are in</strong></p>"
    assert titles(page) == ["Block 1: Heading", "Block 2: Text", "Block 3: Image", "Block 4: Button",
                            "Block 5: Footer"]

    mailing = mailings.create(site.ctx, {"name": "Spring news", "segment_id": segment["id"],
                                         "template_id": saved["id"]})
    page.goto(site(f"/mailings/{mailing['id']}"))
    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    checklist = confirm.get_by_role("list", name="Checklist")
    expect(checklist.locator("[data-check=recipients]")).to_contain_text(
        "1 customer of 1 in Everyone can receive email")
    expect(checklist.locator("[data-check=unsubscribe]")).to_have_attribute("data-level", "ok")
    confirm.get_by_label("Send a test first, to").fill(EMAIL)
    confirm.get_by_role("button", name="Send test").click()
    expect(confirm.get_by_role("status")).to_have_text(f"A test message is on its way to {EMAIL}.")
    smtp_server.wait_for(1)
    assert_fits(page)
    confirm.get_by_role("button", name="Yes, send now").click()
    smtp_server.wait_for(2)

    received = next(r for r in smtp_server.messages if r.rcpt == "ann@example.com").message
    html = received.get_body(("html",)).get_content()
    assert received["Subject"] == "Spring is here"

    for shown_at in (1280, 390):
        at_width(page, shown_at)
        page.set_content(html, wait_until="load")
        found = positions(page, IN_ORDER)
        assert -1 not in found, dict(zip(IN_ORDER, found, strict=True))
        assert found == sorted(found), dict(zip(IN_ORDER, found, strict=True))
        assert page.evaluate("document.querySelector('img[alt=\"Red shoes\"]').naturalWidth") == 320
        assert_fits(page)
        BUILD.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(BUILD / f"received-{width}-shown-at-{shown_at}.png"), full_page=True)
        if width == 1280:
            shot(page, f"received-email-{shown_at}")


@WIDTHS
def test_the_checklist_blocks_a_send_from_an_unverified_domain(
        serve, page: Page, smtp_server, width: int) -> None:  # noqa: F811
    site = serve(require_verified_domain=True, smtp_url=smtp_server.url)
    audience.upsert_customers(site.ctx, [{"email": "ann@example.com", "first_name": "Ann"}])
    segment = audience.create_segment(site.ctx, {"name": "Everyone", "rules": {}})
    template = template_service.create_template(site.ctx, {
        "name": "Plain", "subject": "Hi", "html": "<p>Hi {{ customer.firstname }}</p>"})
    mailing = mailings.create(site.ctx, {"name": "Plain news", "segment_id": segment["id"],
                                         "template_id": template["id"]})
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")

    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    checklist = confirm.get_by_role("list", name="Checklist")
    expect(checklist.locator("[data-check=domain]")).to_have_attribute("data-level", "blocking")
    expect(checklist.locator("[data-check=domain]")).to_contain_text(
        "Mail can only go out from a verified sending domain, and example.com is not set up")
    expect(checklist.locator("[data-check=template]")).to_contain_text(
        "customer.firstname is not a customer field, so it prints nothing. "
        "Did you mean customer.first_name?")
    expect(checklist.locator("[data-check=unsubscribe]")).to_have_attribute("data-level", "warning")
    send = confirm.get_by_role("button", name="Yes, send now")
    expect(send).to_be_disabled()
    expect(send).to_have_accessible_description(
        "It cannot be sent until this is fixed: Sending domain (marked ✗ above).")
    expect(confirm.locator("[data-check=public_url]")).to_have_attribute("data-level", "warning",
                                                                         timeout=15_000)
    assert_fits(page)
    if width == 1280:
        shot(page, "mailing-checklist")
    send.click(force=True)  # as a person can: nothing happens
    page.keyboard.press("Escape")

    button(page, "Schedule").click()
    schedule = dialog(page, "Schedule")
    expect(schedule.get_by_role("button", name="Yes, schedule it")).to_be_disabled()
    assert mailings.get(site.ctx, mailing["id"])["status"] == "draft"
    assert smtp_server.messages == []


@WIDTHS
def test_a_block_dragged_by_its_handle_moves_and_undo_puts_it_back(
        serve, page: Page, width: int) -> None:  # noqa: F811
    site = serve()
    at_width(page, width)
    sign_in(page, site, "/templates/new?starter=reminder")
    before = titles(page)
    assert before == ["Block 1: Heading", "Block 2: Text", "Block 3: Button", "Block 4: Spacer",
                      "Block 5: Footer"]
    page.set_viewport_size({"width": width, "height": 1600})  # both blocks in view, to drag
    block(page, 1).evaluate("b => b.scrollIntoView()")
    handle = block(page, 3).locator(".handle").bounding_box()
    target = block(page, 1).bounding_box()
    assert handle is not None and target is not None
    page.mouse.move(handle["x"] + handle["width"] / 2, handle["y"] + handle["height"] / 2)
    page.mouse.down()
    page.mouse.move(target["x"] + 30, target["y"] + 8, steps=8)
    page.mouse.up()
    assert titles(page)[:3] == ["Block 1: Button", "Block 2: Heading", "Block 3: Text"]
    stored = json.loads(page.locator("#blocks-json").input_value())
    assert [b["type"] for b in stored][:3] == ["button", "heading", "text"]
    page.locator("body").click(position={"x": 5, "y": 5})
    page.keyboard.press("Control+z")
    assert titles(page) == before
    assert_fits(page)
