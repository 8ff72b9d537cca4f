"""The web UI in a real browser: Debian's Chromium, driven by Playwright.

The Chromium is the ``chromium_path`` fixture's (tests/conftest.py):
``TIDINGS_TEST_CHROMIUM`` or ``/usr/bin/chromium``; without one every test
here is skipped and the run's summary says they were NOT RUN and how to fix it.

Each test serves the whole app (API and web UI) with uvicorn in a thread on a
free loopback port, against its own SQLite file; the tests that send run a
worker in another thread, writing mail to an outbox folder. Screenshots of the
main pages go to ``build/screenshots/`` (ignored by git); with
``TIDINGS_UPDATE_SCREENSHOTS=1`` they replace the committed ones in
``docs/screenshots/``, which the README shows.
"""

from __future__ import annotations

import email
import email.policy
import os
import re
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from playwright.sync_api import Browser, Page, expect, sync_playwright

from tidings.config import Settings
from tidings.domain.actors import SYSTEM
from tidings.services import audience, imports, mailings, quotas, test_addresses, tokens, users
from tidings.services import sessions as server_sessions
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.services.sending import make_worker
from tidings.store.db import make_engine
from tidings.web import session as sessions
from tidings.web.session import Session

pytestmark = pytest.mark.browser

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run"]
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / ("docs" if os.environ.get("TIDINGS_UPDATE_SCREENSHOTS") == "1" else "build") \
    / "screenshots"
EMAIL, PASSWORD = "manager@shop.example", "correct horse battery"


@dataclass
class Site:
    """One running app: its base URL and the service context behind it."""

    url: str
    ctx: Context

    def __call__(self, path: str) -> str:
        return self.url + path


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _app(ctx: Context) -> Any:
    from starlette.routing import NoMatchFound

    from tidings.api.app import create_app
    from tidings.web import build_web_router

    app = create_app(ctx)
    try:
        app.url_path_for("sign_in_page")  # already wired into the app
    except NoMatchFound:
        app.include_router(build_web_router(ctx))
    return app


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Browser]:
    with sync_playwright() as pw:
        launched = pw.chromium.launch(executable_path=chromium_path, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def serve(sqlite_template: Path, tmp_path: Path) -> Iterator[Callable[..., Site]]:
    """``serve(**settings)`` -> a running :class:`Site`; ``with_user=True`` adds the admin
    :data:`EMAIL` who signs in with :data:`PASSWORD`, ``with_worker=True`` runs a
    sending worker (and scheduler) in a thread."""
    stops: list[Callable[[], None]] = []

    def start(*, with_user: bool = False, with_worker: bool = False, **overrides: Any) -> Site:
        db = tmp_path / f"tidings-{len(stops)}.db"
        shutil.copy(sqlite_template, db)
        values: dict[str, Any] = {
            "database_url": f"sqlite:///{db}", "smtp_url": f"file://{tmp_path / 'outbox'}",
            "secret_key": "browser-test-secret", "public_url": "http://tidings.test",
            "require_verified_domain": False, "poll_interval": 0.05, "smtp_retry_for": 0,
        } | overrides
        ctx = Context(settings=Settings(_env_file=None, **values),  # type: ignore[call-arg]
                      engine=make_engine(values["database_url"]))
        if with_user:
            users.create_user(ctx, email=EMAIL, password=PASSWORD, role="admin")
        port = _free_port()
        server = uvicorn.Server(uvicorn.Config(_app(ctx), host="127.0.0.1", port=port,
                                               log_level="warning"))
        web = threading.Thread(target=server.run, name="web", daemon=True)
        web.start()
        worker = make_worker(ctx)
        sender = threading.Thread(target=worker.run, name="worker", daemon=True)
        if with_worker:
            sender.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.02)

        def stop() -> None:
            worker.stop_event.set()
            server.should_exit = True
            if with_worker:
                sender.join(timeout=10)
            web.join(timeout=10)
            ctx.close()

        stops.append(stop)
        return Site(url=f"http://127.0.0.1:{port}", ctx=ctx)

    yield start
    for stop in stops:
        stop()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    context = browser.new_context(timezone_id="Europe/Riga", locale="en-GB",
                                  viewport={"width": 1280, "height": 900})
    context.set_default_timeout(10_000)
    opened = context.new_page()
    yield opened
    context.close()


def sign_in(page: Page, site: Site, path: str = "/mailings") -> None:
    """Arrive signed in as the admin :data:`EMAIL` (created if need be): a server-side
    session and the cookie the sign-in form would set (the form itself, and its
    password hashing, are tested once, below)."""
    person = next((u for u in users.list_users(site.ctx) if u["email"] == EMAIL), None)
    user_id = person["id"] if person else users.create_user(site.ctx, email=EMAIL, password=PASSWORD,
                                                             role="admin")
    token = server_sessions.start(site.ctx, user_id=user_id)
    session = Session().signed_in(token=token, email=EMAIL, role="admin", user_id=user_id)
    page.context.add_cookies([{"name": sessions.cookie_name(site.ctx.secret), "url": site.url,
                               "value": sessions.dump(session, site.ctx.secret)}])
    page.goto(site(path))


def shot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def seed(ctx: Context, *, customers: int) -> dict[str, Any]:
    """Customers, a segment of everyone, an email template and a draft mailing to them."""
    audience.upsert_customers(ctx, [
        {"email": f"customer{i}@example.com", "first_name": f"Name{i}",
         "attributes": {"city": "Riga" if i % 2 else "Lyon"}} for i in range(customers)
    ])
    segment = audience.create_segment(ctx, {"name": "Everyone", "rules": {}})
    template = template_service.create_template(ctx, {
        "name": "Spring sale", "channel": "email", "subject": "Hi {{ customer.first_name }}",
        "html": "<p>Hello {{ customer.first_name }}, <a href='https://shop.example/'>shop</a></p>",
    })
    mailing = mailings.create(ctx, {"name": "Spring sale", "segment_id": segment["id"],
                                    "template_id": template["id"]})
    return {"segment": segment, "template": template, "mailing": mailing}


def nav(page: Page, name: str) -> Any:
    return page.get_by_role("navigation", name="Main").get_by_role("link", name=name)


def row_of(page: Page, link: str) -> Any:
    """The table row with the link named ``link``."""
    return page.get_by_role("row").filter(has=page.get_by_role("link", name=link, exact=True))


def button(page: Page, name: str) -> Any:
    """The one button named exactly ``name``, as assistive technology finds it."""
    return page.get_by_role("button", name=name, exact=True)


def dialog(page: Page, name: str) -> Any:
    return page.get_by_role("dialog", name=name)


def choose(row: Any, select: str, page: Page, **option: str) -> None:
    """Choose in a condition's Field or Operator select, and wait until the row is
    drawn again for that choice (htmx), so that nothing typed next is replaced."""
    row.get_by_label(select).select_option(**option)
    page.wait_for_function("() => !document.querySelector('#rules .htmx-request')")


def main_text(page: Page) -> str:
    """What the page shows in its main part (hidden parts left out)."""
    return str(page.locator("main").inner_text())


def status_line(page: Page) -> Any:
    return page.locator("#status-line")


# -- the tests ----------------------------------------------------------------------------


def test_sign_in_is_required_and_a_wrong_password_is_refused(serve, page: Page) -> None:
    site = serve(with_user=True)
    page.goto(site("/customers"))
    expect(page).to_have_url(site("/sign-in?next=%2Fcustomers"))
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("not the password")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    shot(page, "sign-in")

    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page).to_have_url(site("/customers"))
    expect(page.get_by_text("No customers yet.")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_have_text("You are signed out.")
    page.goto(site("/mailings"))
    expect(page).to_have_url(site("/sign-in?next=%2Fmailings"))


def test_a_csv_import_keeps_good_lines_and_reports_the_bad_one(serve, page: Page) -> None:
    site = serve()
    sign_in(page, site)
    nav(page, "Customers").click()
    page.get_by_role("link", name="Import a CSV file").first.click()
    csv = (b"email,first_name,last_name,city\n"
           b"anna@example.com,Anna,Novak,Riga\n"
           b"not-an-address,Boris,Ivanov,Lyon\n"
           b"chloe@example.com,Chloe,Martin,Riga\n")
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "customers.csv", "mimeType": "text/csv", "buffer": csv}])
    page.get_by_role("button", name="Next: check the columns").click()
    expect(page.get_by_label("What “email” means")).to_have_value("email")
    page.get_by_role("button", name="Import").click()

    expect(page.get_by_role("status")).to_contain_text("2 created")
    expect(page.get_by_role("status")).to_contain_text("1 line not imported")
    bad = page.locator("table.errors tbody tr")
    expect(bad).to_have_count(1)
    expect(bad.locator("td").first).to_have_text("3")
    expect(bad.locator("td").nth(1)).to_contain_text("email")
    shot(page, "customers-import")

    page.get_by_role("link", name="See the customers").click()
    expect(page.locator("tbody tr")).to_have_count(2)
    page.get_by_label("Email, name or phone").fill("chloe")
    page.get_by_role("button", name="Show").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    page.get_by_role("link", name="chloe@example.com").click()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Chloe Martin")
    expect(page.get_by_text("No mailing has reached this customer yet.")).to_be_visible()
    expect(page.locator("dl.details").first).to_contain_text("Riga")


def test_the_segment_builder_counts_the_audience_live(serve, page: Page) -> None:
    site = serve()
    seed(site.ctx, customers=10)
    sign_in(page, site, "/segments/new")
    page.get_by_label("Name", exact=True).fill("Riga")
    row = page.locator(".rule-row").first  # found anew each time: it is drawn again
    choose(row, "Field", page, label="Other attribute…")
    row.get_by_label("Attribute name").fill("city")
    choose(row, "Operator", page, value="eq")
    row.get_by_label("Value").fill("Riga")
    count = page.locator("#segment-count")
    expect(count).to_contain_text("5 customers match: 5 reachable by email, 0 by SMS.")

    page.get_by_role("button", name="Add condition").click()
    expect(page.locator(".rule-row")).to_have_count(2)
    second = page.locator(".rule-row").nth(1)
    second.get_by_label("Customer").select_option("not")
    choose(second, "Field", page, value="email")
    choose(second, "Operator", page, value="eq")
    second.get_by_label("Value").fill("customer1@example.com")
    expect(count).to_contain_text("4 customers match")

    choose(second, "Field", page, value="orders_count")
    expect(second.get_by_label("Value")).to_have_attribute("type", "number")
    choose(second, "Operator", page, value="in")
    second.get_by_label("Value").fill("0, many")
    expect(count.get_by_role("alert")).to_have_text(
        'Condition 2: Number of orders needs a number, got "many"')
    second.get_by_label("Value").fill("1")
    expect(count).to_contain_text("5 customers match")
    shot(page, "segment")

    second.get_by_label("Value").fill("0, many")
    page.get_by_role("button", name="Save segment").click()
    second = page.locator(".rule-row").nth(1)
    expect(second.get_by_label("Value")).to_have_accessible_description(
        'Number of orders needs a number, got "many"')
    for api_words in ("rules.all", "orders_count", "\"in\""):
        assert api_words not in main_text(page)
    second.get_by_label("Value").fill("1")

    page.get_by_role("button", name="Save segment").click()
    expect(page.get_by_role("status")).to_have_text("Segment Riga saved.")
    nav(page, "Segments").click()
    riga = row_of(page, "Riga")  # not by the row's name: every row's time says Europe/Riga
    expect(riga.locator("td").nth(1)).to_have_text("5")


def test_the_template_editor_previews_for_a_chosen_customer_and_sends_a_test(
        serve, page: Page, tmp_path: Path) -> None:
    site = serve()
    seed(site.ctx, customers=3)
    sign_in(page, site, "/templates/new?editor=html")
    page.get_by_label("Name", exact=True).fill("Welcome")
    page.get_by_label("Subject").fill("Welcome, {{ customer.first_name }}")
    page.get_by_label("HTML").fill("<h1>Hello {{ customer.first_name }}!</h1>\n"
                                   "<p>{% if customer.attributes.city %}News from "
                                   "{{ customer.attributes.city }}{% endif %}</p>")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Welcome, Alex")
    page.get_by_label("For customer").fill("customer1@example.com")
    expect(page.get_by_test_id("preview-subject")).to_have_text("Welcome, Name1")
    frame = page.frame_locator("iframe.preview-html").first
    expect(frame.locator("h1")).to_have_text("Hello Name1!")
    expect(page.get_by_test_id("preview-text")).to_contain_text("News from Riga")
    shot(page, "template")

    page.get_by_label("HTML").fill("<p>{% if customer.first_name %}unclosed</p>")
    page.get_by_role("button", name="Save template").click()
    expect(page.locator("#f-html-error")).to_contain_text("line 1")
    expect(page.get_by_label("HTML")).to_have_attribute("aria-invalid", "true")
    page.get_by_label("HTML").fill("<p>Hello {{ customer.first_name }}</p>")
    page.get_by_label("Plain-text part").fill("Hello {{ customer.first_name }}, in plain text.")
    page.get_by_role("button", name="Save template").click()
    expect(page.get_by_role("status").first).to_have_text("Template Welcome saved.")
    expect(page.get_by_test_id("preview-text")).to_have_text("Hello Alex, in plain text.")

    page.get_by_label("For customer").fill("customer1@example.com")
    expect(page.get_by_test_id("preview-text")).to_have_text("Hello Name1, in plain text.")
    test_addresses.add_address(site.ctx, "qa@shop.example", actor=SYSTEM)
    page.get_by_label("Send a test to").fill("qa@shop.example")
    page.get_by_role("button", name="Send test").click()
    expect(page.get_by_role("status").first).to_have_text(
        "A test message is on its way to qa@shop.example.")
    (sent,) = (tmp_path / "outbox").glob("*.eml")
    message = email.message_from_bytes(sent.read_bytes(), policy=email.policy.default)
    assert message["To"] == "qa@shop.example" and message["X-Tidings-Test"] == "yes"
    assert message.get_body(("plain",)).get_content().strip() == "Hello Name1, in plain text."


def test_send_now_shows_being_sent_until_sent(serve, page: Page) -> None:
    site = serve(with_worker=True, send_rate=8, send_group=3)
    seed(site.ctx, customers=24)
    sign_in(page, site)
    page.get_by_role("link", name="New mailing").click()
    page.get_by_label("Name", exact=True).fill("Weekend offer")
    page.get_by_label("Segment").select_option(label="Everyone")
    page.get_by_label("Template").select_option(label="Spring sale (email)")
    page.get_by_role("button", name="Create draft").click()
    expect(status_line(page)).to_have_text("Draft")

    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    expect(confirm).to_contain_text("the 24 customers of Everyone who can receive email")
    expect(confirm).to_contain_text("packages of up to 5,000 messages")
    confirm.get_by_role("button", name="Yes, send now").click()
    expect(status_line(page)).to_have_text(re.compile(r"Being sent [1-9][0-9]?%"))
    expect(button(page, "Send now")).to_have_count(0)
    button(page, "Cancel").click()
    expect(dialog(page, "Cancel sending?")).to_contain_text(
        "The package in flight, up to 5,000 messages, will still go out.")
    shot(page, "mailing-sending")
    expect(status_line(page)).to_have_text("Sent", timeout=20_000)
    expect(page.locator(".counts")).to_contain_text("24 sent")
    expect(button(page, "Cancel")).to_have_count(0)

    nav(page, "Mailings").click()
    row = page.get_by_role("row", name="Weekend offer")
    expect(row).to_contain_text("Sent")
    expect(row).to_contain_text("100%")
    shot(page, "mailings")


def test_schedule_shows_the_time_and_cancel_returns_to_draft(serve, page: Page) -> None:
    site = serve()
    mailing = seed(site.ctx, customers=3)["mailing"]
    sign_in(page, site, f"/mailings/{mailing['id']}")
    button(page, "Schedule").click()
    confirm = dialog(page, "Schedule")
    expect(confirm.get_by_label("Time zone")).to_have_value("Europe/Riga")
    expect(confirm.get_by_label("Date and time")).to_be_focused()
    confirm.get_by_label("Date and time").fill("2001-05-01T09:30")
    confirm.get_by_role("button", name="Yes, schedule it").click()
    confirm = dialog(page, "Schedule")  # shown again, with the error in it
    expect(confirm.locator("#f-send-at-error")).to_have_text(
        "That time is in the past; choose a future time.")
    assert "send_at" not in main_text(page)

    confirm.get_by_label("Date and time").fill("2040-05-01T09:30")
    confirm.get_by_role("button", name="Yes, schedule it").click()
    # Chosen in Riga's zone, stored in UTC, shown in the browser's zone (Europe/Riga).
    expect(status_line(page)).to_have_text("Scheduled for 2040-05-01 09:30 Europe/Riga")
    expect(status_line(page).locator("time")).to_have_attribute("datetime", "2040-05-01T06:30:00Z")
    expect(status_line(page).locator("time")).to_have_attribute("title", "2040-05-01 06:30 UTC")
    assert mailings.get(site.ctx, mailing["id"])["status_label"] == \
        "Scheduled for 2040-05-01 06:30 UTC"
    shot(page, "mailing-scheduled")
    nav(page, "Mailings").click()
    expect(row_of(page, "Spring sale")).to_contain_text(
        "Scheduled for 2040-05-01 09:30 Europe/Riga")
    page.get_by_role("link", name="Spring sale").click()
    button(page, "Schedule").click()  # named Schedule, also when it reschedules
    expect(dialog(page, "Reschedule")).to_contain_text("the new time replaces it")
    dialog(page, "Reschedule").get_by_role("link", name="Go back").click()
    expect(dialog(page, "Reschedule")).to_be_hidden()

    button(page, "Cancel").click()
    confirm = dialog(page, "Cancel it?")
    expect(confirm).to_contain_text("It goes back to Draft and nothing is sent.")
    confirm.get_by_role("button", name="Yes, cancel it").click()
    expect(status_line(page)).to_have_text("Draft")


def test_copy_and_delete_from_the_actions_menu_and_chain_steps(serve, page: Page) -> None:
    site = serve()
    mailing = seed(site.ctx, customers=3)["mailing"]
    sign_in(page, site, f"/mailings/{mailing['id']}")
    page.get_by_text("Add a step", exact=True).click()
    page.locator("#step-template").select_option(label="Spring sale (email)")
    page.locator("#step-delay").fill("48")
    page.locator("#step-condition").select_option("not_opened")
    page.get_by_role("button", name="Add step 2").click()
    expect(page.get_by_role("status")).to_have_text("Step 2 added: Spring sale - step 2.")
    expect(page.get_by_role("row", name="Spring sale - step 2")).to_contain_text(
        "48 h after step 1")

    button(page, "Actions").click()
    button(page, "Copy").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Copy of Spring sale")
    expect(page.get_by_role("status")).to_have_text("This is a new draft, Copy of Spring sale.")
    expect(page.locator("table").last.locator("tbody tr")).to_have_count(2)
    button(page, "Actions").click()
    shot(page, "mailing-actions")
    button(page, "Delete").click()
    confirm = dialog(page, "Delete Copy of Spring sale?")
    expect(confirm).to_contain_text(
        "Delete Copy of Spring sale and the 1 later step of its chain? This cannot be undone.")
    confirm.get_by_role("button", name="Yes, delete it").click()
    expect(page.get_by_role("status")).to_have_text("Mailing Copy of Spring sale deleted.")
    expect(page.get_by_role("link", name="Copy of Spring sale")).to_have_count(0)
    expect(page.get_by_role("link", name="Spring sale", exact=True)).to_be_visible()


def _wait_for_status(ctx: Context, mailing_id: int, status: str, timeout: float = 15) -> None:
    deadline = time.monotonic() + timeout
    while mailings.get(ctx, mailing_id)["status"] != status:
        assert time.monotonic() < deadline, mailings.get(ctx, mailing_id)
        time.sleep(0.05)


def test_an_interrupted_mailing_shows_why_and_resumes_after_a_top_up(serve, page: Page) -> None:
    site = serve(with_worker=True)
    mailing = seed(site.ctx, customers=5)["mailing"]
    quotas.topup(site.ctx, channel="email", amount=2, actor=SYSTEM)
    mailings.send_now(site.ctx, mailing["id"])
    _wait_for_status(site.ctx, mailing["id"], "interrupted")

    sign_in(page, site, f"/mailings/{mailing['id']}")
    expect(status_line(page)).to_contain_text("Interrupted: ")
    expect(status_line(page)).to_contain_text("2 left")
    advice = page.get_by_role("region", name="Why it stopped, and what to do")
    expect(advice).to_contain_text("The email quota ran out.")
    shot(page, "mailing-interrupted")

    advice.get_by_role("link", name="Top up the quota").click()
    expect(page.locator("dd[data-channel=email]")).to_have_text("2 left")
    page.get_by_label("Messages to add").fill("100")
    page.get_by_role("button", name="Top up").click()
    expect(page.get_by_role("status")).to_have_text("Added 100 email messages to the quota.")
    expect(page.locator("dd[data-channel=email]")).to_have_text("102 left")
    shot(page, "quota")

    page.goto(site(f"/mailings/{mailing['id']}"))
    button(page, "Resume").click()
    confirm = dialog(page, "Resume sending?")
    expect(confirm).to_contain_text("Sending continues with the 5 customers not handled yet")
    confirm.get_by_role("button", name="Yes, resume").click()
    expect(status_line(page)).to_have_text("Sent", timeout=15_000)
    expect(page.locator(".counts")).to_contain_text("5 sent")


def test_an_admin_revokes_an_api_token_from_the_people_page(serve, page: Page) -> None:
    site = serve(with_user=True)
    export = tokens.create_token(site.ctx, name="shop export", role="manager")
    tokens.create_token(site.ctx, name="deploy", role="admin")
    sign_in(page, site)
    nav(page, "People and tokens").click()
    expect(page.get_by_role("cell", name=EMAIL)).to_be_visible()
    expect(page.get_by_role("cell", name="shop export")).to_be_visible()
    expect(page.get_by_role("cell", name="deploy")).to_be_visible()
    shot(page, "people")

    page.get_by_label("Revoke shop export").click()
    confirm = page.locator("details.confirm[open]")
    expect(confirm).to_contain_text("Scripts using “shop export” are refused from the next request on.")
    confirm.get_by_role("button", name="Yes, revoke shop export").click()
    expect(page.get_by_role("status")).to_have_text(
        "The token is revoked: requests with it are now refused.")
    expect(page.get_by_role("cell", name="shop export")).to_have_count(0)
    expect(page.get_by_role("cell", name="deploy")).to_be_visible()
    response = page.request.get(site("/api/v1/quota"), headers={"Authorization": f"Bearer {export}"})
    assert response.status == 401


# -- the mailing page's controls, the new-mailing form, domains ------------------------------

WIDTHS = pytest.mark.parametrize("width", [1280, 390], ids=["wide", "phone"])


def at_width(page: Page, width: int) -> None:
    page.set_viewport_size({"width": width, "height": 900})


def page_width(page: Page) -> tuple[int, int]:
    """``(document width, viewport width)`` in CSS pixels."""
    found = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    return int(found[0]), int(found[1])


def assert_fits(page: Page) -> None:
    width, viewport = page_width(page)
    assert width <= viewport, f"{page.url} is {width} px wide in a {viewport} px window"


@WIDTHS
def test_the_contract_controls_are_buttons_with_exactly_their_names(
        serve, page: Page, width: int) -> None:
    site = serve()
    mailing = seed(site.ctx, customers=3)["mailing"]
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")
    for name in ("Send now", "Schedule", "Actions"):
        expect(button(page, name)).to_have_count(1)
        expect(button(page, name)).to_be_enabled()
    for name in ("Cancel", "Resume", "Copy", "Delete"):  # the last two are in the closed menu
        expect(button(page, name)).to_have_count(0)
    assert_fits(page)

    actions = button(page, "Actions")
    expect(actions).to_have_attribute("aria-haspopup", "true")
    expect(actions).to_have_attribute("aria-expanded", "false")
    actions.click()
    expect(actions).to_have_attribute("aria-expanded", "true")
    expect(button(page, "Copy")).to_be_focused()
    expect(button(page, "Delete")).to_be_visible()
    page.keyboard.press("ArrowDown")
    expect(button(page, "Delete")).to_be_focused()
    assert_fits(page)
    page.keyboard.press("Escape")
    expect(actions).to_have_attribute("aria-expanded", "false")
    expect(actions).to_be_focused()
    expect(button(page, "Copy")).to_have_count(0)

    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    expect(confirm).to_contain_text("the 3 customers of Everyone who can receive email")
    expect(confirm.get_by_role("link", name="Go back")).to_be_focused()
    assert_fits(page)
    page.keyboard.press("Escape")
    expect(confirm).to_be_hidden()
    expect(button(page, "Send now")).to_be_focused()
    assert mailings.get(site.ctx, mailing["id"])["status"] == "draft"


@WIDTHS
def test_each_confirmation_works_without_javascript(serve, browser: Browser, width: int) -> None:
    site = serve()
    mailing = seed(site.ctx, customers=3)["mailing"]
    context = browser.new_context(java_script_enabled=False, viewport={"width": width, "height": 900})
    page = context.new_page()
    try:
        sign_in(page, site, f"/mailings/{mailing['id']}")
        button(page, "Actions").click()
        expect(button(page, "Actions")).to_have_attribute("aria-expanded", "true")
        button(page, "Delete").click()
        expect(dialog(page, "Delete Spring sale?")).to_contain_text("This cannot be undone.")
        dialog(page, "Delete Spring sale?").get_by_role("link", name="Go back").click()
        button(page, "Send now").click()
        expect(dialog(page, "Send now?")).to_contain_text("the 3 customers of Everyone")
        assert_fits(page)
        dialog(page, "Send now?").get_by_role("button", name="Yes, send now").click()
        expect(status_line(page)).to_have_text(re.compile(r"Being sent|Sent"))
    finally:
        context.close()


@WIDTHS
def test_send_now_and_schedule_are_off_with_the_reason_until_the_draft_can_go(
        serve, page: Page, width: int) -> None:
    site = serve()
    made = seed(site.ctx, customers=3)
    unfinished = mailings.create(site.ctx, {"name": "Unfinished"})
    at_width(page, width)
    sign_in(page, site, f"/mailings/{unfinished['id']}")
    for name in ("Send now", "Schedule"):
        expect(button(page, name)).to_have_attribute("aria-disabled", "true")
        expect(button(page, name)).to_have_accessible_description(
            "Choose a segment and a template first, in Settings below.")
    expect(button(page, "Send now")).to_be_disabled()
    button(page, "Send now").click(force=True)  # as a person can: nothing opens
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert_fits(page)

    settings = page.get_by_role("region", name="Settings")
    settings.get_by_label("Segment").select_option(label="Everyone")
    settings.get_by_label("Template").select_option(label="Spring sale (email)")
    settings.get_by_role("button", name="Save changes").click()
    expect(button(page, "Send now")).not_to_have_attribute("aria-disabled", "true")
    button(page, "Send now").click()
    expect(dialog(page, "Send now?")).to_be_visible()

    # Nobody in Everyone has a phone: an SMS mailing to them cannot go.
    sms = template_service.create_template(site.ctx, {"name": "Flash sale", "channel": "sms",
                                             "text": "Sale today"})
    texted = mailings.create(site.ctx, {"name": "By SMS", "channel": "sms",
                                        "segment_id": made["segment"]["id"],
                                        "template_id": sms["id"]})
    page.goto(site(f"/mailings/{texted['id']}"))
    for name in ("Send now", "Schedule"):
        expect(button(page, name)).to_have_attribute("aria-disabled", "true")
    expect(page.locator("#not-ready")).to_have_text(
        "Nobody in the segment Everyone can receive it: no customer there has a phone number "
        "and is subscribed. Choose another segment, or add customers to it.")
    assert_fits(page)


def option_labels(select: Any) -> list[str]:
    """The options a person can pick in ``select`` (shown and enabled)."""
    return list(select.evaluate(
        """s => Array.from(s.options).filter(o => !o.disabled && !o.hidden && !o.parentElement.hidden
                                           && !o.parentElement.disabled).map(o => o.label)"""))


@WIDTHS
def test_the_new_mailing_form_offers_the_templates_of_the_chosen_channel(
        serve, page: Page, width: int) -> None:
    site = serve()
    seed(site.ctx, customers=3)
    template_service.create_template(site.ctx, {"name": "Flash sale", "channel": "sms", "text": "Sale today"})
    at_width(page, width)
    sign_in(page, site, "/mailings/new")
    template = page.get_by_label("Template")
    assert option_labels(template) == ["Choose later", "Spring sale (email)"]
    expect(page.get_by_label("From address")).to_be_visible()
    assert_fits(page)

    page.get_by_label("Channel").select_option("sms")
    assert option_labels(template) == ["Choose later", "Flash sale (sms)"]
    expect(page.get_by_label("From address")).to_be_hidden()
    template.select_option(label="Flash sale (sms)")
    page.get_by_label("Channel").select_option("email")
    expect(template).to_have_value("")  # the SMS template is not kept for an email
    page.get_by_label("Channel").select_option("sms")
    template.select_option(label="Flash sale (sms)")
    page.get_by_label("Name", exact=True).fill("Flash")
    page.get_by_label("Segment").select_option(label="Everyone")
    page.get_by_role("button", name="Create draft").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Flash")
    expect(page.locator(".meta")).to_contain_text("SMS")
    expect(page.locator(".meta")).to_contain_text("template Flash sale")


@WIDTHS
def test_a_refusal_is_said_in_the_managers_words(serve, page: Page, width: int) -> None:
    site = serve(require_verified_domain=True, smtp_url="smtp://127.0.0.1:9")
    mailing = seed(site.ctx, customers=3)["mailing"]
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")
    words = ("Mail can only go out from a verified sending domain, and example.com is not set up: "
             "add it on the Domains page, publish the SPF, DKIM and DMARC records it gives, then "
             "verify it.")
    button(page, "Send now").click()
    confirm = dialog(page, "Send now?")
    expect(confirm.locator("[data-check=domain]")).to_contain_text(words)  # the checklist says it
    expect(confirm.get_by_role("button", name="Yes, send now")).to_be_disabled()
    confirm.locator("form").first.evaluate("form => form.submit()")  # confirmed all the same
    expect(page.get_by_role("alert")).to_have_text(words)
    for api_words in ("/api/v1", "POST", "from_email"):
        assert api_words not in main_text(page)
    assert_fits(page)


@WIDTHS
def test_the_domains_page_shows_a_failed_check_once_wrapped_with_copy_buttons(
        serve, page: Page, width: int) -> None:
    from tests.dnsserver import LocalDns
    from tidings.services import domains

    with LocalDns() as dns:
        site = serve(dns_server=dns.address)
        domain = domains.create(site.ctx, {"domain": "shop.example"})
        at_width(page, width)
        sign_in(page, site, "/domains")
        page.get_by_role("button", name="Verify shop.example now").click()
    expect(page.get_by_role("alert")).to_contain_text("shop.example is not verified yet")
    dkim = next(r for r in domain["records"] if r["purpose"] == "dkim")
    key = dkim["value"].rsplit("p=", 1)[1]
    assert len(key) > 300
    assert main_text(page).count(key) == 1
    expect(page.get_by_text("publish the record shown")).to_have_count(3)
    assert_fits(page)
    if width == 1280:
        shot(page, "domains")

    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=site.url)
    copy = button(page, "Copy the DKIM value")
    expect(copy).to_have_text("Copy")
    copy.click()
    expect(copy).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") == dkim["value"]
    button(page, "Copy the DKIM name").click()
    assert page.evaluate("navigator.clipboard.readText()") == dkim["name"]


def test_two_instances_on_one_host_keep_their_own_sign_in(serve, page: Page) -> None:
    first = serve(with_user=True, secret_key="the first instance's secret")
    second = serve(with_user=True, secret_key="the second instance's secret")
    for site in (first, second):
        page.goto(site("/sign-in"))
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page).to_have_url(site("/mailings"))
    for site in (first, second):  # cookies ignore the port: each needs its own name
        page.goto(site("/customers"))
        expect(page).to_have_url(site("/customers"))
    assert len({c["name"] for c in page.context.cookies()}) == 2


def test_the_pages_have_an_icon(serve, page: Page) -> None:
    site = serve(with_user=True)
    page.goto(site("/sign-in"))
    icon = page.locator("link[rel=icon]").get_attribute("href")
    assert icon is not None
    linked = page.request.get(site(icon))
    fallback = page.request.get(site("/favicon.ico"))
    assert (linked.status, linked.headers["content-type"]) == (200, "image/svg+xml")
    assert (fallback.status, fallback.headers["content-type"]) == (200, "image/x-icon")


# -- narrow screens -----------------------------------------------------------------------


@pytest.mark.parametrize("width", [390, 1280], ids=["phone", "wide"])
def test_every_main_page_fits_the_window_without_sideways_scrolling(
        serve, page: Page, width: int) -> None:
    from tests.dnsserver import LocalDns
    from tidings.services import domains, orders

    with LocalDns() as dns:
        site = serve(with_user=True, with_worker=True, dns_server=dns.address)
        made = seed(site.ctx, customers=6)
        ctx, mailing = site.ctx, made["mailing"]
        mailings.add_step(ctx, mailing["id"], {"template_id": made["template"]["id"],
                                               "delay_hours": 48, "condition": "not_opened"})
        sent = mailings.copy(ctx, mailing["id"])
        mailings.send_now(ctx, sent["id"])
        _wait_for_status(ctx, sent["id"], "sent")
        orders.create_order(ctx, {"external_id": "A-1", "customer_email": "customer1@example.com",
                                      "total": "120.00", "created_at": ctx.now().isoformat()})
        domain = domains.create(ctx, {"domain": "shop.example"})
        domains.verify(ctx, domain["id"])
    at_width(page, width)
    sign_in(page, site)
    customer = audience.find_customers(ctx, email="customer1@example.com")[0]
    preview = imports.preview(ctx, b"email,Accepts Email Marketing,city\na@example.org,yes,Riga\n",
                              filename="shop-export.csv", actor=SYSTEM)
    paths = ["/mailings", "/mailings/new", f"/mailings/{mailing['id']}", f"/mailings/{sent['id']}",
             "/customers", f"/customers/{customer['id']}", f"/customers/{customer['id']}/edit",
             "/customers/new", "/customers/import", f"/customers/import/{preview['id']}",
             "/settings", "/segments",
             "/segments/new", f"/segments/{made['segment']['id']}", "/templates", "/templates/new",
             f"/templates/{made['template']['id']}", "/quota", "/domains", "/admin/people"]
    too_wide = {}
    for path in paths:
        page.goto(site(path))
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        document, viewport = page_width(page)
        if document > viewport:
            too_wide[path] = document
    assert too_wide == {}, f"wider than {width} px: {too_wide}"


@WIDTHS
def test_a_mailing_canceled_while_sending_says_so_until_the_package_in_flight_is_out(
        serve, page: Page, width: int) -> None:
    site = serve(package_size=2)
    mailing = seed(site.ctx, customers=4)["mailing"]
    mailings.send_now(site.ctx, mailing["id"])
    worker = make_worker(site.ctx)
    package = worker.claim()  # a worker has started the first package ...
    assert package is not None
    mailings.cancel(site.ctx, mailing["id"])  # ... when the manager cancels
    at_width(page, width)
    sign_in(page, site, f"/mailings/{mailing['id']}")

    expect(status_line(page)).to_have_text("Being sent 0%, canceling after this package")
    expect(button(page, "Cancel")).to_have_count(0)  # it is being canceled already
    assert_fits(page)

    worker.process(package)  # the package goes out whole; then the mailing is Canceled
    worker.close()
    page.reload()
    expect(status_line(page)).to_have_text("Canceled")
    expect(page.get_by_text("2 sent")).to_be_visible()
    expect(button(page, "Resume")).to_have_count(1)


@WIDTHS
def test_a_canceled_chain_step_is_scheduled_again_at_its_chain_time(
        serve, page: Page, width: int) -> None:
    site = serve()
    made = seed(site.ctx, customers=2)
    first = made["mailing"]
    step = mailings.add_step(site.ctx, first["id"], {"template_id": made["template"]["id"],
                                                     "delay_hours": 48, "condition": "all"})
    mailings.send_now(site.ctx, first["id"])
    make_worker(site.ctx).run_until_idle()
    scheduled = mailings.get(site.ctx, step["id"])
    assert scheduled["status"] == "scheduled"
    mailings.cancel(site.ctx, step["id"])
    at_width(page, width)
    sign_in(page, site, f"/mailings/{step['id']}")

    expect(status_line(page)).to_have_text("Draft")
    button(page, "Schedule").click()
    confirm = dialog(page, "Schedule")
    expect(confirm).to_contain_text("Leave it empty to send it at its chain time: 48 hours after step 1")
    assert_fits(page)
    confirm.get_by_role("button", name="Yes, schedule it").click()

    expect(status_line(page)).to_have_text(re.compile(r"^Scheduled for "))
    assert mailings.get(site.ctx, step["id"])["send_at"] == scheduled["send_at"]
