"""The web UI over HTTP (no browser): sessions, CSRF, roles, errors next to fields."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tidings.domain.actors import SYSTEM
from tidings.services import audience, mailings, quotas, test_addresses, tokens, users
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.web import session as sessions

PASSWORD = "long enough password"


def _app(ctx: Context) -> Any:
    from starlette.routing import NoMatchFound

    from tidings.api.app import create_app
    from tidings.web import build_web_router

    app = create_app(ctx)
    try:
        app.url_path_for("sign_in_page")
    except NoMatchFound:
        app.include_router(build_web_router(ctx))
    return app


@pytest.fixture
def ctx(make_ctx) -> Context:  # type: ignore[no-untyped-def]
    made: Context = make_ctx()
    return made


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(_app(ctx), follow_redirects=False) as made:
        yield made


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, ctx: Context, *, role: str = "admin") -> str:
    """Sign in through the form; returns the session's CSRF token."""
    email = f"{role}@shop.example"
    users.create_user(ctx, email=email, password=PASSWORD, role=role)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": email, "password": PASSWORD,
                                              "csrf_token": token, "next": ""})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/mailings").text)


def text_of(html: str) -> str:
    """The words of a page: no tags, attributes, scripts or text-area contents."""
    html = re.sub(r"(?s)<(script|style|textarea)\b.*?</\1>", " ", html)
    return unescape(re.sub(r"<[^>]+>", " ", html))


def draft_mailing(ctx: Context) -> dict[str, Any]:
    """A draft email mailing to everyone (one customer), ready to send."""
    audience.upsert_customer(ctx, {"email": "ann@example.org", "first_name": "Ann"})
    segment = audience.create_segment(ctx, {"name": "All", "rules": {}})
    template = template_service.create_template(ctx, {"name": "T", "channel": "email", "subject": "S",
                                             "html": "<p>Hi</p>"})
    return mailings.create(ctx, {"name": "M", "segment_id": segment["id"], "template_id": template["id"]})


def test_a_page_sends_a_visitor_to_sign_in_and_back(client: TestClient, ctx: Context) -> None:
    response = client.get("/segments?x=1")
    assert (response.status_code, response.headers["location"]) == (
        303, "/sign-in?next=%2Fsegments%3Fx%3D1")
    users.create_user(ctx, email="a@shop.example", password=PASSWORD)
    token = csrf_of(client.get("/sign-in?next=%2Fsegments").text)
    response = client.post("/sign-in", data={"email": "a@shop.example", "password": PASSWORD,
                                              "csrf_token": token, "next": "/segments"})
    assert (response.status_code, response.headers["location"]) == (303, "/segments")
    assert client.get("/segments").status_code == 200


def test_sign_in_never_redirects_to_another_site(client: TestClient, ctx: Context) -> None:
    users.create_user(ctx, email="a@shop.example", password=PASSWORD)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": "a@shop.example", "password": PASSWORD,
                                              "csrf_token": token, "next": "//evil.example/"})
    assert response.headers["location"] == "/mailings"


def test_a_wrong_password_is_refused_with_a_message(client: TestClient, ctx: Context) -> None:
    users.create_user(ctx, email="a@shop.example", password=PASSWORD)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": "a@shop.example", "password": "nope",
                                              "csrf_token": token})
    assert response.status_code == 401
    assert "Wrong email or password." in response.text
    assert client.get("/mailings").status_code == 303


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
        client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    for data, headers in (({"channel": "email", "amount": "5"}, {}),
                          ({"channel": "email", "amount": "5", "csrf_token": "forged"}, {})):
        response = client.post("/quota/topup", data=data, headers=headers)
        assert response.status_code == 403
        assert "This form is out of date" in response.text
    assert quotas.get_quota(ctx)["email"]["balance"] is None

    response = client.post("/quota/topup", data={"channel": "email", "amount": "5"},
                           headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    assert quotas.get_quota(ctx)["email"]["balance"] == 5


def test_a_tampered_session_cookie_is_not_signed_in(client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx, role="manager")
    cookie = client.cookies[sessions.cookie_name(ctx.secret)]
    session = sessions.load(cookie, ctx.secret)
    assert session is not None and session.token is not None

    body, _, mac = cookie.rpartition(".")
    forged = sessions.dump(session, b"another key")
    assert sessions.load(forged, ctx.secret) is None
    assert sessions.load(body + "." + "0" * len(mac), ctx.secret) is None
    for bad in (forged, body + "." + "0" * len(mac)):
        client.cookies.clear()
        client.cookies.set(sessions.cookie_name(ctx.secret), bad)
        assert client.get("/mailings").status_code == 303


def test_a_manager_sees_no_top_up_and_no_admin_pages(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx, role="manager")
    quota = client.get("/quota")
    assert "Only an admin can top up the quota." in quota.text
    assert 'action="/quota/topup"' not in quota.text
    refused = client.post("/quota/topup", data={"channel": "email", "amount": "5",
                                                "csrf_token": token})
    assert refused.status_code == 403
    assert "Only an admin may do this." in refused.text
    assert client.get("/admin/people").status_code == 403
    assert "People and tokens" not in client.get("/mailings").text


def test_an_admin_adds_a_person_who_can_then_sign_in(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    short = client.post("/admin/people", data={"email": "m@shop.example", "password": "short",
                                                "role": "manager", "csrf_token": token})
    assert short.status_code == 422
    assert 'id="f-password-error">The password needs at least 8 characters.' in short.text
    added = client.post("/admin/people", data={"email": "m@shop.example", "password": PASSWORD,
                                               "role": "manager", "csrf_token": token})
    assert added.status_code == 303
    assert users.sign_in(ctx, email="m@shop.example", password=PASSWORD).role == "manager"

    made = client.post("/admin/tokens", data={"name": "export", "role": "manager",
                                              "csrf_token": token})
    shown = re.search(r'data-testid="new-token">(tid_[^<]+)<', made.text)
    assert shown and tokens.authenticate(ctx, shown.group(1)).role == "manager"


def test_a_service_error_is_shown_next_to_its_field(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    response = client.post("/mailings/new", data={"name": "  ", "channel": "email",
                                                   "csrf_token": token})
    assert response.status_code == 422
    assert re.search(r'id="f-name"[^>]*aria-describedby="f-name-hint f-name-error"[^>]*aria-invalid',
                     response.text)
    assert '<p class="field-error" id="f-name-error">A mailing needs a name.</p>' in response.text


def test_an_action_the_mailing_cannot_take_is_explained(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    mailing = mailings.create(ctx, {"name": "Unfinished"})
    response = client.post(f"/mailings/{mailing['id']}/send", data={"csrf_token": token})
    assert response.headers["location"] == f"/mailings/{mailing['id']}"
    page = client.get(response.headers["location"]).text
    assert "It is not ready to send: choose a segment and a template first." in page
    assert "segment_id" not in text_of(page)
    assert mailings.get(ctx, mailing["id"])["status"] == "draft"


def test_the_status_fragment_reloads_the_page_when_the_status_changed(
        client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)
    mailing = draft_mailing(ctx)
    same = client.get(f"/mailings/{mailing['id']}/status?was=draft")
    assert "HX-Refresh" not in same.headers
    assert '<strong id="status-line">Draft</strong>' in same.text
    changed = client.get(f"/mailings/{mailing['id']}/status?was=sending")
    assert changed.headers["HX-Refresh"] == "true"


def test_a_schedule_without_a_time_zone_offset_is_given_one(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    mailing = draft_mailing(ctx)
    response = client.post(f"/mailings/{mailing['id']}/schedule", data={
        "send_at": "2040-01-15T09:00", "tz": "America/New_York", "csrf_token": token})
    assert response.status_code == 303
    scheduled = mailings.get(ctx, mailing["id"])
    assert scheduled["status_label"] == "Scheduled for 2040-01-15 14:00 UTC"

    bad = client.post(f"/mailings/{mailing['id']}/schedule", data={
        "send_at": "2040-01-15T09:00", "tz": "Mars/Olympus", "csrf_token": token})
    assert bad.status_code == 422
    assert "Choose a time zone from the list" in bad.text


def test_the_live_preview_renders_unsaved_fields_for_a_customer_given_by_email(
        client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    audience.upsert_customer(ctx, {"email": "ann@example.org", "first_name": "Ann"})
    fields = {"channel": "email", "subject": "Hi {{ customer.first_name }}", "html": "<p>x</p>",
              "text": "", "csrf_token": token}

    shown = client.post("/templates/preview", data=fields | {"customer": "ann@example.org"})
    sample = client.post("/templates/preview", data=fields | {"customer": ""})
    unknown = client.post("/templates/preview", data=fields | {"customer": "zed@example.org"})

    assert '<strong data-testid="preview-subject">Hi Ann</strong>' in shown.text
    assert '<strong data-testid="preview-subject">Hi Alex</strong>' in sample.text
    assert "There is no customer with the email zed@example.org." in unknown.text
    assert template_service.list_templates(ctx) == []


def test_a_test_send_from_the_template_editor_arrives_at_the_smtp_server(
        make_ctx, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    audience.upsert_customer(ctx, {"email": "ann@example.org", "first_name": "Ann"})
    template = template_service.create_template(ctx, {"name": "Welcome", "channel": "email",
                                             "subject": "Hi {{ customer.first_name }}",
                                             "html": "<p>Hello {{ customer.first_name }}</p>"})
    smtp_server.handler.reject["nobody@example.org"] = "550 5.1.1 No such user"
    for address in ("qa@shop.example", "nobody@example.org"):
        test_addresses.add_address(ctx, address, actor=SYSTEM)
    with TestClient(_app(ctx), follow_redirects=False) as client:
        token = sign_in(client, ctx)
        page = client.get(f"/templates/{template['id']}").text
        assert f'action="/templates/{template["id"]}/test-send"' in page

        sent = client.post(f"/templates/{template['id']}/test-send", data={
            "to": "qa@shop.example", "customer": "ann@example.org", "csrf_token": token})
        shown = client.get(sent.headers["location"]).text
        bad = client.post(f"/templates/{template['id']}/test-send", data={
            "to": "not an address", "customer": "", "csrf_token": token})
        refused = client.post(f"/templates/{template['id']}/test-send", data={
            "to": "nobody@example.org", "customer": "", "csrf_token": token})

    assert (sent.status_code, sent.headers["location"]) == (303, f"/templates/{template['id']}")
    assert "A test message is on its way to qa@shop.example." in shown
    (received,) = smtp_server.messages
    assert received.rcpt == "qa@shop.example"
    assert received.message["Subject"] == "Hi Ann"
    assert received.message["X-Tidings-Test"] == "yes"
    assert "Hello Ann" in received.message.get_body(("html",)).get_content()
    assert bad.status_code == 422
    assert re.search(r'id="f-to"[^>]*aria-invalid="true"', bad.text)
    assert 'id="f-to-error">An email address must have an @-sign.</p>' in bad.text
    assert refused.status_code == 409
    assert "550 5.1.1 No such user" in refused.text
    assert 'value="nobody@example.org"' in refused.text


def test_an_admin_sees_people_and_tokens_and_revokes_a_token_which_the_api_then_refuses(
        client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    export = tokens.create_token(ctx, name="export", role="manager")
    tokens.create_token(ctx, name="deploy", role="admin")
    (export_id,) = [t["id"] for t in tokens.list_tokens(ctx) if t["name"] == "export"]
    assert client.get("/api/v1/quota", headers={"Authorization": f"Bearer {export}"}
                      ).status_code == 200

    page = client.get("/admin/people").text
    assert "admin@shop.example" in page and "export" in page and "deploy" in page
    assert export not in page and "token_hash" not in page
    assert f'action="/admin/tokens/{export_id}/revoke"' in page

    forged = client.post(f"/admin/tokens/{export_id}/revoke", data={"csrf_token": "forged"})
    assert forged.status_code == 403
    assert [t["name"] for t in tokens.list_tokens(ctx)] == ["export", "deploy"]

    revoked = client.post(f"/admin/tokens/{export_id}/revoke", data={"csrf_token": token})
    assert (revoked.status_code, revoked.headers["location"]) == (303, "/admin/people")
    after = client.get("/admin/people").text
    assert "The token is revoked: requests with it are now refused." in after
    assert f'action="/admin/tokens/{export_id}/revoke"' not in after
    response = client.get("/api/v1/quota", headers={"Authorization": f"Bearer {export}"})
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "unauthorized"
    again = client.post(f"/admin/tokens/{export_id}/revoke", data={"csrf_token": token})
    assert "it may have been revoked already" in client.get(again.headers["location"]).text


def test_a_manager_cannot_revoke_a_token(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx, role="manager")
    tokens.create_token(ctx, name="export")
    (token_id,) = [t["id"] for t in tokens.list_tokens(ctx)]
    refused = client.post(f"/admin/tokens/{token_id}/revoke", data={"csrf_token": token})
    assert refused.status_code == 403
    assert len(tokens.list_tokens(ctx)) == 1


def test_a_bad_page_address_gets_an_html_page_and_the_api_keeps_its_json_envelope(
        client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)

    page = client.get("/mailings/abc")
    query = client.get("/mailings?page=0")
    api = client.get("/api/v1/mailings/abc", headers={"Authorization": "Bearer admin-token"})

    assert page.status_code == 404 and page.headers["content-type"].startswith("text/html")
    assert "<h1>Not found</h1>" in page.text and "There is no such page." in page.text
    assert query.status_code == 422 and query.headers["content-type"].startswith("text/html")
    assert "(page)" in query.text
    assert api.status_code == 422 and api.headers["content-type"] == "application/json"
    assert api.json()["error"]["code"] == "invalid_input"


def test_a_later_chain_step_offers_no_send_or_schedule_and_the_page_follows_the_service(
        client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)
    first = draft_mailing(ctx)
    second = mailings.add_step(ctx, first["id"], {"template_id": first["template_id"]})

    first_page = client.get(f"/mailings/{first['id']}").text
    step_page = client.get(f"/mailings/{second['id']}").text

    assert f'action="/mailings/{first["id"]}/send"' in first_page
    assert f'action="/mailings/{first["id"]}/schedule"' in first_page
    assert f'action="/mailings/{second["id"]}/send"' not in step_page
    assert f'action="/mailings/{second["id"]}/schedule"' not in step_page
    assert f'action="/mailings/{second["id"]}/copy"' in step_page
    assert f'action="/mailings/{second["id"]}/delete"' in step_page


def test_a_scheduled_time_is_sent_as_utc_for_the_browser_to_show_in_its_zone(
        client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    mailing = draft_mailing(ctx)
    client.post(f"/mailings/{mailing['id']}/schedule", data={
        "send_at": "2040-01-15T09:00", "tz": "America/New_York", "csrf_token": token})

    shown = '<time datetime="2040-01-15T14:00:00Z" data-local-time>2040-01-15 14:00 UTC</time>'
    page = client.get(f"/mailings/{mailing['id']}").text
    assert f'<strong id="status-line">Scheduled for {shown}</strong>' in page
    assert f"Scheduled for {shown}" in client.get("/mailings").text


# -- what a manager reads -----------------------------------------------------------------

def _mailing_form(client: TestClient, ctx: Context, token: str, path: str,
                  data: dict[str, str]) -> str:
    mailing = draft_mailing(ctx)
    return client.post(f"/mailings/{mailing['id']}/{path}", data=data | {"csrf_token": token}).text


def _sms_template_on_an_email_mailing(client: TestClient, ctx: Context, token: str) -> str:
    sms = template_service.create_template(ctx, {"name": "S", "channel": "sms", "text": "Hi"})
    return client.post("/mailings/new", data={"name": "M", "channel": "email",
                                              "template_id": str(sms["id"]), "csrf_token": token}).text


def _template(html: str) -> Callable[[TestClient, Context, str], str]:
    def post(client: TestClient, ctx: Context, token: str) -> str:
        return client.post("/templates/new", data={"name": "T", "channel": "email", "subject": "S",
                                                   "html": html, "text": "",
                                                   "csrf_token": token}).text
    return post


REFUSALS: dict[str, tuple[Callable[[TestClient, Context, str], str], str, str]] = {
    "a time in the past": (
        lambda c, x, t: _mailing_form(c, x, t, "schedule", {"send_at": "2001-05-01T09:30", "tz": "UTC"}),
        "That time is in the past; choose a future time.", "send_at"),
    "a step without a template": (
        lambda c, x, t: _mailing_form(c, x, t, "steps", {"template_id": "", "delay_hours": "24"}),
        "Choose a template for the step.", "template_id"),
    "a step a year and more later": (
        lambda c, x, t: _mailing_form(c, x, t, "steps", {"template_id": "1", "delay_hours": "9000"}),
        "The delay is a number of hours from 0 to 8,760 (a year).", "delay_hours"),
    "no conversion window": (
        lambda c, x, t: _mailing_form(c, x, t, "edit", {"name": "M", "window_days": "0",
                                                         "basis": "received"}),
        "Count orders placed within 1 to 365 days of the message.", "window_days"),
    "a From address without @": (
        lambda c, x, t: _mailing_form(c, x, t, "edit", {"name": "M", "from_email": "shop.example"}),
        "An email address must have an @-sign.", "from_email"),
    "an SMS template for an email": (
        _sms_template_on_an_email_mailing,
        "That template is for SMS, and this mailing is email: choose an email template.",
        "is for sms"),
    "an email template without a body": (
        _template(""), "An email template needs HTML or a plain-text part.", "html or text"),
    "a template tag left open": (
        _template("<p>{% if customer.first_name %}Hi</p>"), "The HTML has a syntax error on line 1",
        "html template"),
    "a top-up of nothing": (
        lambda c, x, t: c.post("/quota/topup", data={"channel": "email", "amount": "0",
                                                     "csrf_token": t}).text,
        "Give a whole number of messages, 1 or more.", "amount must"),
    "a rule with a word for a number": (
        lambda c, x, t: c.post("/segments/new", data={
            "name": "Buyers", "mode": "builder", "match": "all", "negate": "", "field": "orders_count",
            "key": "", "op": "gt", "value": "many", "csrf_token": t}).text,
        'Number of orders needs a number, got "many"', "rules.all"),
}


@pytest.mark.parametrize("case", list(REFUSALS))
def test_a_refusal_is_shown_in_the_managers_words_not_the_apis(
        client: TestClient, ctx: Context, case: str) -> None:
    token = sign_in(client, ctx)
    act, said, api_words = REFUSALS[case]
    page = text_of(act(client, ctx, token))
    assert said in page
    assert api_words not in page


def test_the_api_keeps_its_own_wording(client: TestClient, ctx: Context) -> None:
    mailing = draft_mailing(ctx)
    response = client.post(f"/api/v1/mailings/{mailing['id']}/schedule",
                           json={"send_at": "2001-05-01T09:30:00+00:00"},
                           headers={"Authorization": "Bearer admin-token"})
    assert response.status_code == 422
    assert response.json()["error"]["message"] == "send_at is in the past; choose a future time."


def test_an_unverified_domain_is_explained_without_the_api(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(require_verified_domain=True, smtp_url="smtp://127.0.0.1:9")
    mailing = draft_mailing(ctx)
    with TestClient(_app(ctx), follow_redirects=False) as client:
        token = sign_in(client, ctx)
        sent = client.post(f"/mailings/{mailing['id']}/send", data={"csrf_token": token})
        page = text_of(client.get(sent.headers["location"]).text)
        api = client.post(f"/api/v1/mailings/{mailing['id']}/send",
                          headers={"Authorization": "Bearer admin-token"})
    assert "Mail can only go out from a verified sending domain, and example.com is not set up: " \
           "add it on the Domains page, publish the SPF, DKIM and DMARC records it gives" in page
    assert "/api/v1" not in page
    assert "(or POST /api/v1/domains)" in api.json()["error"]["message"]


# -- the mailing page without JavaScript, the cookie, the icon ------------------------------

def test_without_javascript_a_control_asks_for_the_page_with_its_confirmation_open(
        client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)
    mailing = draft_mailing(ctx)
    closed = client.get(f"/mailings/{mailing['id']}").text
    send = client.get(f"/mailings/{mailing['id']}?confirm=send").text
    menu = client.get(f"/mailings/{mailing['id']}?menu=actions").text

    assert re.search(r'<button type="submit" name="confirm" value="send"[^>]*>Send now</button>', closed)
    assert '<dialog id="confirm-send" class="confirm" aria-labelledby="confirm-send-title">' in closed
    assert '<dialog id="confirm-send" class="confirm" aria-labelledby="confirm-send-title" open>' in send
    assert '<div class="menu-body" id="actions-menu" hidden>' in closed
    assert '<div class="menu-body" id="actions-menu">' in menu
    assert 'aria-expanded="true"' in menu and 'aria-expanded="true"' not in closed
    assert "<summary" not in closed.split('<details class="add-step"')[0]


def test_the_session_cookie_is_named_after_the_instance(client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)
    (name,) = client.cookies.keys()
    assert name == sessions.cookie_name(ctx.secret)
    assert name.startswith("tidings_session_")
    assert sessions.cookie_name(b"another instance") != name
    assert sessions.cookie_name(ctx.secret) == name  # every process of one instance agrees
    assert ctx.secret.decode() not in name


def test_the_site_icon_is_served(client: TestClient) -> None:
    page = client.get("/sign-in").text
    href = re.search(r'<link rel="icon" href="([^"]+)" type="image/svg\+xml">', page)
    assert href
    svg = client.get(href.group(1))
    ico = client.get("/favicon.ico")
    assert (svg.status_code, svg.headers["content-type"]) == (200, "image/svg+xml")
    assert svg.text.startswith("<svg")
    assert (ico.status_code, ico.headers["content-type"]) == (200, "image/x-icon")
    assert ico.content[:4] == b"\0\0\1\0"  # an ICO file's header
