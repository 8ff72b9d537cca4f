"""Customers, segments in plain words and the pages customers see, in Chromium
at 1280 and 390 px: edit and erase a customer, import with a mapped consent
column (and its progress bar), a relative-date segment whose count follows
the clock, the shop's settings and the unsubscribe and preference pages.

The app, the browser and the helpers are those of ``test_browser.py``.
"""

from __future__ import annotations

import email
import email.policy
import re
import struct
import threading
import zlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_browser
from tests.e2e.test_browser import (
    WIDTHS,
    assert_fits,
    at_width,
    button,
    choose,
    dialog,
    main_text,
    row_of,
    seed,
    shot,
    sign_in,
)
from tidings.services import customers, imports, mailings, orders, segments, shop, stats
from tidings.services.sending import make_worker

pytestmark = pytest.mark.browser
# The fixtures of test_browser.py, used here by name.
browser, serve, page = test_browser.browser, test_browser.serve, test_browser.page



def png(width: int = 40, height: int = 20) -> bytes:
    """A small solid blue PNG, made here rather than kept as a file."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(
            ">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + b"\x24\x50\xa6" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows))
            + chunk(b"IEND", b""))


@WIDTHS
def test_a_customer_is_edited_unsubscribed_and_erased(serve, page: Page, width: int) -> None:
    site = serve()
    made = seed(site.ctx, customers=3)
    mailings.send_now(site.ctx, made["mailing"]["id"])
    make_worker(site.ctx).run_until_idle()
    at_width(page, width)
    sign_in(page, site, "/customers")

    expect(page.get_by_role("status")).to_have_text("3 customers")
    page.get_by_role("link", name="customer1@example.com").click()
    page.get_by_role("link", name="Edit").click()
    page.get_by_label("First name").fill("Anna")
    page.get_by_label("Attribute 2 name").fill("tier")
    page.get_by_label("Attribute 2 value").fill("gold")
    assert_fits(page)
    button(page, "Save changes").click()

    expect(page.get_by_role("status")).to_have_text("Changes saved.")
    expect(page.get_by_role("heading", level=1)).to_contain_text("Anna")
    expect(page.locator("dl.details").first).to_contain_text("gold")
    button(page, "Unsubscribe from email").click()
    expect(page.get_by_role("status")).to_contain_text("Unsubscribed from email")
    expect(button(page, "Subscribe to email again")).to_be_visible()
    shot(page, f"customer-{width}")
    assert_fits(page)

    button(page, "Erase personal data").click()
    confirm = dialog(page, "Erase this customer's personal data?")
    expect(confirm).to_contain_text("This cannot be undone.")
    confirm.get_by_role("button", name="Yes, erase for good").click()

    expect(page.get_by_role("status").first).to_contain_text("Customer erased")
    expect(page.get_by_role("status").first).to_contain_text("Their email stays blocked")
    expect(page.get_by_role("link", name="customer1@example.com")).to_have_count(0)
    page.get_by_label("Email, name or phone").fill("customer1@example.com")
    button(page, "Show").click()
    expect(page.get_by_text("No customer matches.")).to_be_visible()
    page.goto(site(f"/mailings/{made['mailing']['id']}"))
    expect(page.get_by_text("3 sent")).to_be_visible()  # the statistics keep the erased one


@WIDTHS
def test_the_list_filters_by_status_and_segment_and_pages_by_keyset(serve, page: Page,
                                                                   width: int) -> None:
    site = serve()
    customers.upsert_customers(site.ctx, [
        {"email": f"c{i:02d}@example.com", "attributes": {"city": "Riga" if i < 30 else "Oslo"},
         "email_status": "unsubscribed" if i % 10 == 0 else None} for i in range(60)])
    riga = segments.create_segment(site.ctx, {"name": "Riga", "rules": {
        "field": "attributes.city", "op": "eq", "value": "Riga"}})
    at_width(page, width)
    sign_in(page, site, "/customers")

    expect(page.get_by_role("status")).to_have_text("60 customers")
    expect(page.locator("tbody tr")).to_have_count(50)
    expect(page.locator("tbody tr").first).to_contain_text("c59@example.com")
    page.get_by_role("link", name="Older →").click()
    expect(page.locator("tbody tr")).to_have_count(10)
    page.get_by_role("link", name="← Newer").click()
    expect(page.locator("tbody tr").first).to_contain_text("c59@example.com")

    page.get_by_label("Email", exact=True).select_option("unsubscribed")
    page.get_by_label("Segment").select_option(label="Riga")
    button(page, "Show").click()
    expect(page.get_by_role("status")).to_have_text("3 customers match")
    expect(page.locator("tbody tr")).to_have_count(3)
    export = page.get_by_role("link", name="Export the segment as CSV")
    expect(export).to_have_attribute("href", f"/customers/export.csv?segment={riga['id']}")
    assert_fits(page)
    shot(page, f"customers-{width}")


@WIDTHS
def test_an_import_with_a_mapped_consent_column_shows_its_progress(
        serve, page: Page, width: int, monkeypatch: pytest.MonkeyPatch) -> None:
    site = serve()
    customers.upsert_customer(site.ctx, {"email": "c0002@example.com",
                                         "email_status": "unsubscribed"})
    monkeypatch.setattr(imports, "CHUNK", 100)
    first_chunk, go_on = threading.Event(), threading.Event()
    write = imports._write

    def held(*args: Any) -> None:  # the import waits after its first chunk
        write(*args)
        first_chunk.set()
        go_on.wait(timeout=30)

    monkeypatch.setattr(imports, "_write", held)
    lines = ["Customer ID,Email,Accepts Email Marketing,Total Spent"]
    lines += [f"{i},c{i:04d}@example.com,{'no' if i % 4 == 0 else 'yes'},{i}.50" for i in range(300)]
    lines.insert(6, "X,broken-address,yes,1")
    at_width(page, width)
    sign_in(page, site, "/customers/import")
    page.get_by_label("CSV file").set_input_files(files=[{
        "name": "customers_export.csv", "mimeType": "text/csv",
        "buffer": ("\n".join(lines) + "\n").encode()}])
    button(page, "Next: check the columns").click()

    expect(page.get_by_role("heading", level=1)).to_have_text("What does each column mean?")
    expect(page.get_by_label("What “Accepts Email Marketing” means")).to_have_value("email_consent")
    expect(page.get_by_label("What “Customer ID” means")).to_have_value("external_id")
    page.get_by_label("What “Total Spent” means").select_option("attribute")
    page.get_by_label("Attribute name for “Total Spent”").fill("spent")
    assert_fits(page)
    shot(page, f"customers-mapping-{width}")
    button(page, "Import").click()

    assert first_chunk.wait(timeout=15)
    progress = page.get_by_role("progressbar")
    expect(progress).to_be_visible()
    expect(page.get_by_text(re.compile(r"Importing: line 1\d\d of 302"))).to_be_visible()
    assert_fits(page)
    go_on.set()
    expect(page.get_by_role("status")).to_contain_text("Done: 299 created, 1 updated, 1 line not imported")
    expect(page.locator("table.errors tbody tr td").first).to_have_text("7")
    shot(page, f"customers-import-{width}")

    found = {c["email"]: c for c in customers.list_customers(site.ctx, limit=500)["customers"]}
    assert found["c0004@example.com"]["email_status"] == "unsubscribed"  # "no"
    assert found["c0001@example.com"]["email_status"] == "subscribed"
    assert found["c0002@example.com"]["email_status"] == "unsubscribed"  # "yes" did not undo it
    assert found["c0001@example.com"]["attributes"] == {"spent": "1.50"}


@WIDTHS
def test_a_relative_date_segment_follows_the_clock(serve, page: Page, width: int) -> None:
    site = serve()
    now = datetime(2030, 6, 1, 12, tzinfo=UTC)
    site.ctx.clock = lambda: now
    customers.upsert_customers(site.ctx, [{"email": f"b{i}@example.com"} for i in range(3)])
    for i, days in enumerate((10, 40)):
        orders.create_order(site.ctx, {"external_id": f"O-{i}", "customer_email": f"b{i}@example.com",
                                       "total": "25.00",
                                       "created_at": (now - timedelta(days=days)).isoformat()})
    at_width(page, width)
    sign_in(page, site, "/segments/new")
    page.get_by_label("Name", exact=True).fill("Bought this month")
    row = page.locator(".rule-row").first
    choose(row, "Field", page, label="Last order")
    expect(row.get_by_label("Operator")).to_have_value("within_days")
    row.get_by_label("Number of days").fill("30")
    count = page.locator("#segment-count")
    expect(count).to_contain_text("1 customer matches")
    assert_fits(page)
    shot(page, f"segment-relative-{width}")
    button(page, "Save segment").click()
    expect(page.get_by_role("status")).to_have_text("Segment Bought this month saved.")

    later = now + timedelta(days=25)  # the order of ten days ago is now 35 days old
    site.ctx.clock = lambda: later
    sign_in(page, site, "/segments")  # 25 days on, the session has ended: sign in again
    expect(row_of(page, "Bought this month").locator("td").nth(1)).to_have_text("0")
    expect(row_of(page, "Bought this month")).to_contain_text("follows the calendar")
    page.get_by_role("link", name="Bought this month").click()
    expect(page.get_by_label("Number of days")).to_have_value("30")  # it stayed relative
    expect(count).to_contain_text("0 customers match")
    row = page.locator(".rule-row").first
    choose(row, "Operator", page, value="absent")
    expect(count).to_contain_text("1 customer matches")  # never ordered
    assert "within_days" not in main_text(page)


@WIDTHS
def test_a_segment_in_use_cannot_be_deleted_and_a_copy_can(serve, page: Page, width: int) -> None:
    site = serve()
    made = seed(site.ctx, customers=2)
    later = (datetime.now(UTC) + timedelta(days=2)).isoformat()
    mailings.schedule(site.ctx, made["mailing"]["id"], datetime.fromisoformat(later))
    at_width(page, width)
    sign_in(page, site, f"/segments/{made['segment']['id']}")

    button(page, "Copy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Copy of Everyone")
    button(page, "Delete").click()
    dialog(page, "Delete Copy of Everyone?").get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("status")).to_have_text("Segment Copy of Everyone deleted.")

    page.get_by_role("link", name="Everyone").click()
    button(page, "Delete").click()
    dialog(page, "Delete Everyone?").get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("alert")).to_contain_text(
        "This segment cannot be deleted: the mailing “Spring sale” (scheduled) uses it.")
    assert_fits(page)


def unsubscribe_link(outbox: Path, address: str) -> str:
    for path in outbox.glob("*.eml"):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        if message["To"] == address:
            return str(message["List-Unsubscribe"]).strip("<>")
    raise AssertionError(f"no message to {address}")


@WIDTHS
def test_the_pages_customers_see_name_the_shop_and_let_them_choose(
        serve, page: Page, width: int, tmp_path: Path) -> None:
    site = serve(with_user=True)
    at_width(page, width)
    sign_in(page, site, "/settings")
    page.get_by_label("Shop name").fill("Riga Bikes")
    page.get_by_label("Postal address").fill("Brīvības iela 1\nRiga, LV-1010")
    page.get_by_label("Upload a logo").set_input_files(files=[{
        "name": "logo.png", "mimeType": "image/png", "buffer": png()}])
    page.get_by_label("Email address").fill("news@rigabikes.example")
    button(page, "Save settings").click()
    expect(page.get_by_role("status")).to_have_text("Settings saved.")
    expect(page.get_by_role("img", name="The current logo")).to_be_visible()
    assert_fits(page)
    shot(page, f"settings-{width}")
    assert shop.default_sender(site.ctx).email == "news@rigabikes.example"

    customers.upsert_customer(site.ctx, {"email": "ann@example.org", "phone": "+37120000001"})
    made = seed(site.ctx, customers=0)
    mailings.send_now(site.ctx, made["mailing"]["id"])
    make_worker(site.ctx).run_until_idle()
    link = unsubscribe_link(tmp_path / "outbox", "ann@example.org").replace(
        "http://tidings.test", site.url)
    page.context.clear_cookies()
    page.goto(link)

    expect(page.get_by_role("heading", level=1)).to_have_text("Unsubscribe")
    expect(page.get_by_role("img", name="Riga Bikes")).to_be_visible()
    expect(page.locator("main")).to_contain_text(
        "Do you want to stop getting emails from Riga Bikes at a***@example.org?")
    expect(page.locator("footer")).to_contain_text("Brīvības iela 1")
    assert "ann@example.org" not in page.content()
    assert_fits(page)
    shot(page, f"unsubscribe-{width}")
    button(page, "Unsubscribe").click()
    expect(page.get_by_role("status")).to_have_text(
        "a***@example.org will not get emails from Riga Bikes any more.")
    assert stats.mailing_stats(site.ctx, made["mailing"]["id"])["unsubscribed"] == 1

    button(page, "Subscribe again").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("You are subscribed again")
    assert stats.mailing_stats(site.ctx, made["mailing"]["id"])["unsubscribed"] == 0
    page.get_by_role("link", name="Choose what you get").click()
    expect(page.get_by_label("Emails to a***@example.org")).to_be_checked()
    page.get_by_label("Text messages to +37•••••••01").uncheck()
    assert_fits(page)
    shot(page, f"preferences-{width}")
    button(page, "Save my choices").click()

    expect(page.get_by_role("status")).to_have_text("Your choices are saved.")
    expect(page.get_by_label("Text messages to +37•••••••01")).not_to_be_checked()
    ann = customers.find_customers(site.ctx, email="ann@example.org")[0]
    assert (ann["email_status"], ann["sms_status"]) == ("subscribed", "unsubscribed")
