"""The web UI over HTTP (no browser): sessions, CSRF, roles, errors next to fields."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tidings.services import audience, auth, content, mailings
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
    auth.create_user(ctx, email=email, password=PASSWORD, role=role)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": email, "password": PASSWORD,
                                              "csrf_token": token, "next": ""})
    assert response.status_code == 303, response.text
    return csrf_of(client.get("/mailings").text)


def test_a_page_sends_a_visitor_to_sign_in_and_back(client: TestClient, ctx: Context) -> None:
    response = client.get("/segments?x=1")
    assert (response.status_code, response.headers["location"]) == (
        303, "/sign-in?next=%2Fsegments%3Fx%3D1")
    auth.create_user(ctx, email="a@shop.example", password=PASSWORD)
    token = csrf_of(client.get("/sign-in?next=%2Fsegments").text)
    response = client.post("/sign-in", data={"email": "a@shop.example", "password": PASSWORD,
                                              "csrf_token": token, "next": "/segments"})
    assert (response.status_code, response.headers["location"]) == (303, "/segments")
    assert client.get("/segments").status_code == 200


def test_sign_in_never_redirects_to_another_site(client: TestClient, ctx: Context) -> None:
    auth.create_user(ctx, email="a@shop.example", password=PASSWORD)
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": "a@shop.example", "password": PASSWORD,
                                              "csrf_token": token, "next": "//evil.example/"})
    assert response.headers["location"] == "/mailings"


def test_a_wrong_password_is_refused_with_a_message(client: TestClient, ctx: Context) -> None:
    auth.create_user(ctx, email="a@shop.example", password=PASSWORD)
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
    assert content.get_quota(ctx)["email"]["balance"] is None

    response = client.post("/quota/topup", data={"channel": "email", "amount": "5"},
                           headers={"X-CSRF-Token": token})
    assert response.status_code == 303
    assert content.get_quota(ctx)["email"]["balance"] == 5


def test_a_tampered_or_expired_session_is_not_signed_in(client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx, role="manager")
    cookie = client.cookies[sessions.COOKIE]
    session = sessions.load(cookie, ctx.secret)
    assert session is not None and session.role == "manager"

    body, _, mac = cookie.rpartition(".")
    forged = sessions.dump(session.signed_in(email=session.email or "", role="admin"), b"other")
    assert sessions.load(forged, ctx.secret) is None
    assert sessions.load(body + "." + "0" * len(mac), ctx.secret) is None
    later = (session.signed_in_at or 0) + sessions.MAX_AGE + 1
    expired = sessions.load(cookie, ctx.secret, now=later)
    assert expired is not None and expired.actor is None

    client.cookies.set(sessions.COOKIE, forged)
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
    assert auth.sign_in(ctx, email="m@shop.example", password=PASSWORD).role == "manager"

    made = client.post("/admin/tokens", data={"name": "export", "role": "manager",
                                              "csrf_token": token})
    shown = re.search(r'data-testid="new-token">(tid_[^<]+)<', made.text)
    assert shown and auth.authenticate(ctx, shown.group(1)).role == "manager"


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
    assert "The mailing is not ready to send: set segment_id, template_id first." in page
    assert mailings.get(ctx, mailing["id"])["status"] == "draft"


def test_the_status_fragment_reloads_the_page_when_the_status_changed(
        client: TestClient, ctx: Context) -> None:
    sign_in(client, ctx)
    segment = audience.create_segment(ctx, {"name": "All", "rules": {}})
    template = content.create_template(ctx, {"name": "T", "channel": "email", "subject": "S",
                                             "html": "<p>Hi</p>"})
    mailing = mailings.create(ctx, {"name": "M", "segment_id": segment["id"],
                                    "template_id": template["id"]})
    same = client.get(f"/mailings/{mailing['id']}/status?was=draft")
    assert "HX-Refresh" not in same.headers
    assert '<strong id="status-line">Draft</strong>' in same.text
    changed = client.get(f"/mailings/{mailing['id']}/status?was=sending")
    assert changed.headers["HX-Refresh"] == "true"


def test_a_schedule_without_a_time_zone_offset_is_given_one(client: TestClient, ctx: Context) -> None:
    token = sign_in(client, ctx)
    segment = audience.create_segment(ctx, {"name": "All", "rules": {}})
    template = content.create_template(ctx, {"name": "T", "channel": "email", "subject": "S",
                                             "html": "<p>Hi</p>"})
    mailing = mailings.create(ctx, {"name": "M", "segment_id": segment["id"],
                                    "template_id": template["id"]})
    response = client.post(f"/mailings/{mailing['id']}/schedule", data={
        "send_at": "2040-01-15T09:00", "tz": "America/New_York", "csrf_token": token})
    assert response.status_code == 303
    scheduled = mailings.get(ctx, mailing["id"])
    assert scheduled["status_label"] == "Scheduled for 2040-01-15 14:00 UTC"

    bad = client.post(f"/mailings/{mailing['id']}/schedule", data={
        "send_at": "2040-01-15T09:00", "tz": "Mars/Olympus", "csrf_token": token})
    assert bad.status_code == 422
    assert "Choose a time zone from the list" in bad.text
