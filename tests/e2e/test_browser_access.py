"""People, roles, password resets, the audit log and sign-in lockout as an admin
and a manager see them in Chromium, at 1280 and 390 px; and every page loaded
under its Content-Security-Policy without a single violation."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import Page, expect

from tests.e2e import test_browser as browser_tests
from tests.e2e.test_browser import (
    EMAIL,
    PASSWORD,
    WIDTHS,
    assert_fits,
    at_width,
    button,
    main_text,
    nav,
    seed,
    shot,
    sign_in,
)
from tidings.domain.actors import SYSTEM
from tidings.services import audience, mailings, quotas, tokens, users

pytestmark = pytest.mark.browser

# The browser tests' fixtures: a Chromium, a page in it, and a running app.
browser, page, serve = browser_tests.browser, browser_tests.page, browser_tests.serve


def open_confirmation(page: Page, opener: str) -> Any:
    page.get_by_label(opener, exact=True).click()
    return page.locator("details.confirm[open]")


@WIDTHS
def test_an_admin_changes_a_role_resets_a_password_and_removes_a_person(
        serve, page: Page, width: int) -> None:  # type: ignore[no-untyped-def]
    site = serve(with_user=True)
    users.create_user(site.ctx, email="bob@shop.example", password="bob's password", actor=SYSTEM)
    at_width(page, width)
    sign_in(page, site, "/admin/people")
    assert_fits(page)

    confirm = open_confirmation(page, "Make bob@shop.example an admin")
    expect(confirm).to_contain_text("bob@shop.example becomes an admin: also quota, people and tokens. "
                                    "They are signed out now and sign in again with the new role.")
    assert_fits(page)
    confirm.get_by_role("button", name="Yes, make bob@shop.example an admin").click()
    expect(page.get_by_role("status")).to_have_text(
        "bob@shop.example is now an admin; they sign in again to continue.")
    expect(page.get_by_role("row").filter(has_text="bob@shop.example")).to_contain_text("admin")

    confirm = open_confirmation(page, "Reset the password of bob@shop.example")
    expect(confirm).to_contain_text("Their password stops working at once and they are signed out.")
    confirm.get_by_role("button", name="Yes, reset the password of bob@shop.example").click()
    shown = page.get_by_test_id("reset-link")
    expect(shown).to_contain_text("bob@shop.example is signed out and their password no longer works.")
    link = shown.locator("code").inner_text()
    assert re.fullmatch(r"http://tidings\.test/reset/[A-Za-z0-9_-]{40,}", link), link
    assert_fits(page)
    if width == 1280:
        shot(page, "people-actions")

    confirm = open_confirmation(page, "Remove bob@shop.example")
    expect(confirm).to_contain_text("bob@shop.example can no longer sign in, and is signed out at once.")
    confirm.get_by_role("button", name="Yes, remove bob@shop.example").click()
    expect(page.get_by_role("status")).to_have_text("bob@shop.example is removed and can no longer sign in.")
    expect(page.get_by_role("cell", name="bob@shop.example")).to_have_count(0)
    assert [u["email"] for u in users.list_users(site.ctx)] == [EMAIL]


@WIDTHS
def test_the_last_admin_is_told_why_they_cannot_step_down(serve, page: Page, width: int) -> None:  # type: ignore[no-untyped-def]
    site = serve(with_user=True)
    at_width(page, width)
    sign_in(page, site, "/admin/people")

    confirm = open_confirmation(page, f"Make {EMAIL} a manager")
    expect(confirm).to_contain_text("You become a manager")
    confirm.get_by_role("button", name=f"Yes, make {EMAIL} a manager").click()

    expect(page.get_by_role("alert")).to_have_text(
        f"{EMAIL} is the only admin and cannot become a manager: make someone else an admin first, "
        "so that someone can still manage people.")
    assert_fits(page)
    assert users.list_users(site.ctx)[0]["role"] == "admin"


@WIDTHS
def test_a_person_chooses_a_new_password_through_the_reset_link(serve, page: Page, width: int) -> None:  # type: ignore[no-untyped-def]
    site = serve(public_url="http://127.0.0.1")  # the link's origin is replaced below
    bob = users.create_user(site.ctx, email="bob@shop.example", password="old password", actor=SYSTEM)
    link = users.reset_password(site.ctx, user_id=bob, actor=SYSTEM)["link"]
    at_width(page, width)

    page.goto(site(link.removeprefix("http://127.0.0.1")))
    expect(page.get_by_role("heading", level=1)).to_have_text("Choose a new password")
    expect(page.get_by_text("For bob@shop.example.")).to_be_visible()
    assert_fits(page)
    page.get_by_label("New password").fill("bob's new password")
    page.get_by_label("The same password again").fill("bob's new password")
    button(page, "Set my password").click()

    expect(page.get_by_role("status")).to_have_text(
        "Your new password is set: sign in with bob@shop.example and it.")
    page.get_by_label("Email").fill("bob@shop.example")
    page.get_by_label("Password").fill("bob's new password")
    button(page, "Sign in").click()
    expect(nav(page, "Mailings")).to_be_visible()
    page.goto(site(link.removeprefix("http://127.0.0.1")))
    expect(page.get_by_role("alert")).to_contain_text("This link to choose a password does not work "
                                                      "any more")


@WIDTHS
def test_too_many_wrong_passwords_lock_the_account_and_say_for_how_long(
        serve, page: Page, width: int) -> None:  # type: ignore[no-untyped-def]
    site = serve(with_user=True)
    at_width(page, width)
    page.goto(site("/sign-in"))
    for _ in range(4):
        page.get_by_label("Email").fill(EMAIL)
        page.get_by_label("Password").fill("a wrong guess")
        button(page, "Sign in").click()
        expect(page.get_by_role("alert")).to_have_text("Wrong email or password.")
    page.get_by_label("Password").fill("a wrong guess")
    button(page, "Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(
        "Too many attempts for this account: try again in 15 minutes.")
    page.get_by_label("Password").fill(PASSWORD)
    button(page, "Sign in").click()
    expect(page.get_by_role("alert")).to_have_text(re.compile(
        r"^Too many attempts for this account: try again in 1[45] minutes\.$"))
    assert_fits(page)
    if width == 1280:
        shot(page, "sign-in-locked")


@WIDTHS
def test_an_admin_reads_who_did_what_in_the_audit_log(serve, page: Page, width: int) -> None:  # type: ignore[no-untyped-def]
    site = serve(with_user=True)
    made = seed(site.ctx, customers=2)
    manager = users.create_user(site.ctx, email="bob@shop.example", password="bob's password",
                                actor=SYSTEM)
    bob = users.sign_in(site.ctx, email="bob@shop.example", password="bob's password")
    mailings.send_now(site.ctx, made["mailing"]["id"], actor=bob)
    admin = users.sign_in(site.ctx, email=EMAIL, password=PASSWORD)
    quotas.topup(site.ctx, channel="email", amount=1000, actor=admin)
    users.change_role(site.ctx, manager, role="admin", actor=admin)
    at_width(page, width)
    sign_in(page, site, "/mailings")

    nav(page, "Audit log").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Audit log")
    rows = page.locator("table.audit tbody tr")
    expect(rows.nth(0)).to_contain_text(f"{EMAIL}")
    expect(rows.nth(0)).to_contain_text("changed the role of bob@shop.example")
    expect(rows.nth(0)).to_contain_text("from: manager")
    expect(rows.nth(1)).to_contain_text("topped up email quota")
    expect(rows.nth(1)).to_contain_text("amount: 1000")
    expect(rows.nth(2)).to_contain_text("bob@shop.example")
    expect(rows.nth(2)).to_contain_text(f"sent mailing {made['mailing']['id']} “Spring sale”")
    assert_fits(page)
    if width == 1280:
        shot(page, "audit")


def test_a_manager_sees_neither_people_nor_the_audit_log(serve, page: Page) -> None:  # type: ignore[no-untyped-def]
    site = serve()
    users.create_user(site.ctx, email="bob@shop.example", password="bob's password", actor=SYSTEM)
    page.goto(site("/sign-in"))
    page.get_by_label("Email").fill("bob@shop.example")
    page.get_by_label("Password").fill("bob's password")
    button(page, "Sign in").click()
    expect(nav(page, "Mailings")).to_be_visible()
    expect(nav(page, "Audit log")).to_have_count(0)
    expect(nav(page, "People and tokens")).to_have_count(0)
    page.goto(site("/admin/audit"))
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")


def test_no_page_breaks_its_content_security_policy(serve, page: Page) -> None:  # type: ignore[no-untyped-def]
    site = serve(with_user=True)
    made = seed(site.ctx, customers=3)
    customer = audience.find_customers(site.ctx, email="customer1@example.com")[0]
    tokens.create_token(site.ctx, name="shop", actor=SYSTEM)
    page.add_init_script(
        "window.__violations = [];"
        "document.addEventListener('securitypolicyviolation', e => window.__violations.push("
        "e.violatedDirective + ' ' + (e.blockedURI || 'inline') + ' ' + (e.sourceFile || '') + ':' "
        "+ e.lineNumber));")
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text)
            if "Content Security Policy" in message.text else None)
    paths = ["/sign-in", "/reset/not-a-link", "/mailings", "/mailings/new",
             f"/mailings/{made['mailing']['id']}", f"/mailings/{made['mailing']['id']}?confirm=send",
             "/customers", f"/customers/{customer['id']}", "/customers/import", "/segments",
             "/segments/new", f"/segments/{made['segment']['id']}", "/templates", "/templates/new",
             f"/templates/{made['template']['id']}", "/quota", "/domains", "/admin/people",
             "/admin/audit", "/u/not-a-link"]
    found: dict[str, list[str]] = {}
    sign_in(page, site)
    for path in paths:
        page.goto(site(path))
        expect(page.get_by_role("heading", level=1)).to_be_visible()
        page.wait_for_load_state("networkidle")
        violations = page.evaluate("window.__violations")
        if violations:
            found[path] = violations
    # the pages' scripts ran (a blocked script would leave times in UTC and no dialogs)
    page.goto(site(f"/mailings/{made['mailing']['id']}"))
    button(page, "Send now").click()
    expect(page.get_by_role("dialog", name="Send now")).to_be_visible()
    assert found == {} and console == [], (found, console)
    assert "Send now" in main_text(page)
