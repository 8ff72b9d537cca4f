"""Web sessions that can end: sign-out, removal, a new role and a password reset
end them at once, wherever the cookie was copied; idle and absolute timeouts;
the cookie's flags. Over HTTP against the whole app, on both databases."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import pytest
from fastapi.testclient import TestClient

from tidings.api.app import create_app
from tidings.domain.actors import SYSTEM
from tidings.services import sessions as server_sessions
from tidings.services import users
from tidings.services.context import Context
from tidings.web import session as cookies
from tidings.web.session import Session

PASSWORD = "long enough password"


@pytest.fixture
def ctx(make_ctx) -> Context:  # type: ignore[no-untyped-def]
    made: Context = make_ctx()
    return made


def client_for(ctx: Context, base_url: str = "http://testserver", **kw: object) -> TestClient:
    return TestClient(create_app(ctx), base_url=base_url, follow_redirects=False, **kw)  # type: ignore[arg-type]


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with client_for(ctx) as made:
        yield made


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(client: TestClient, email: str, password: str = PASSWORD) -> int:
    token = csrf_of(client.get("/sign-in").text)
    response = client.post("/sign-in", data={"email": email, "password": password, "csrf_token": token})
    return response.status_code


def person(ctx: Context, email: str, role: str = "manager") -> int:
    return users.create_user(ctx, email=email, password=PASSWORD, role=role)


def is_signed_in(client: TestClient) -> bool:
    response = client.get("/mailings")
    assert response.status_code in (200, 303), response.status_code
    return response.status_code == 200


def cookie(client: TestClient, ctx: Context) -> str:
    return client.cookies[cookies.cookie_name(ctx.secret)]


def use_cookie(client: TestClient, ctx: Context, value: str) -> None:
    """The browser now holds ``value`` as its only session cookie."""
    client.cookies.clear()
    client.cookies.set(cookies.cookie_name(ctx.secret), value)


def test_a_cookie_copied_before_sign_out_is_refused_after_it(client: TestClient, ctx: Context) -> None:
    person(ctx, "ann@shop.example")
    assert sign_in(client, "ann@shop.example") == 303
    copied = cookie(client, ctx)

    page = client.get("/mailings").text
    client.post("/sign-out", data={"csrf_token": csrf_of(page)})

    assert not is_signed_in(client)
    use_cookie(client, ctx, copied)
    assert not is_signed_in(client)
    assert client.get("/mailings").headers["location"] == "/sign-in?next=%2Fmailings"


def test_removing_a_person_ends_their_sessions_at_once(ctx: Context) -> None:
    bob = person(ctx, "bob@shop.example")
    with client_for(ctx) as laptop, client_for(ctx) as phone:
        assert sign_in(laptop, "bob@shop.example") == 303
        assert sign_in(phone, "bob@shop.example") == 303
        assert is_signed_in(laptop) and is_signed_in(phone)

        person(ctx, "admin@shop.example", role="admin")
        users.remove_user(ctx, bob, actor=SYSTEM)

        assert not is_signed_in(laptop) and not is_signed_in(phone)
        assert sign_in(phone, "bob@shop.example") == 401


def test_a_new_role_ends_the_persons_sessions_and_the_next_sign_in_has_it(
        client: TestClient, ctx: Context) -> None:
    bob = person(ctx, "bob@shop.example")
    assert sign_in(client, "bob@shop.example") == 303
    assert client.get("/admin/people").status_code == 403

    users.change_role(ctx, bob, role="admin", actor=SYSTEM)

    assert not is_signed_in(client)
    assert sign_in(client, "bob@shop.example") == 303
    assert client.get("/admin/people").status_code == 200


def test_a_password_reset_ends_sessions_and_the_old_password_until_the_link_sets_a_new_one(
        client: TestClient, ctx: Context) -> None:
    bob = person(ctx, "bob@shop.example")
    assert sign_in(client, "bob@shop.example") == 303

    reset = users.reset_password(ctx, user_id=bob, actor=SYSTEM)

    assert reset["mailed"] is False and reset["link"].startswith("http://tidings.test/reset/")
    assert not is_signed_in(client)
    assert sign_in(client, "bob@shop.example") == 401  # the old password no longer works
    path = reset["link"].removeprefix("http://tidings.test")
    form = client.get(path)
    assert form.status_code == 200 and "bob@shop.example" in form.text
    differ = client.post(path, data={"password": "new password 1", "password_again": "new password 2",
                                     "csrf_token": csrf_of(form.text)})
    assert differ.status_code == 422 and "The two passwords differ" in differ.text
    done = client.post(path, data={"password": "new password 1", "password_again": "new password 1",
                                   "csrf_token": csrf_of(form.text)})
    assert (done.status_code, done.headers["location"]) == (303, "/sign-in")
    again = client.get(path)
    assert again.status_code == 404 and "ask an admin for a new one" in again.text
    assert sign_in(client, "bob@shop.example", "new password 1") == 303
    assert is_signed_in(client)


def test_a_cookie_naming_no_session_or_someone_removed_is_refused(
        client: TestClient, ctx: Context) -> None:
    ann = person(ctx, "ann@shop.example", role="admin")
    invented = Session(token="no-such-session")
    use_cookie(client, ctx, cookies.dump(invented, ctx.secret))
    assert not is_signed_in(client)

    token = server_sessions.start(ctx, user_id=ann)
    use_cookie(client, ctx, cookies.dump(Session(token=token), ctx.secret))
    assert is_signed_in(client)
    person(ctx, "other@shop.example", role="admin")
    users.remove_user(ctx, ann, actor=SYSTEM)
    assert not is_signed_in(client)


def test_a_session_ends_when_idle_too_long_and_at_its_lifetime_whatever_happens(
        make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(session_idle_timeout=2 * 3600, session_lifetime=12 * 3600)
    start = ctx.now()
    person(ctx, "ann@shop.example")
    with client_for(ctx) as client:
        assert sign_in(client, "ann@shop.example") == 303
        for hours in (1.9, 3.8, 5.7, 7.6, 9.5, 11.4):  # used every 1.9 hours: kept alive
            ctx.clock = lambda h=hours: start + timedelta(hours=h)
            assert is_signed_in(client), hours
        ctx.clock = lambda: start + timedelta(hours=12, minutes=1)
        assert not is_signed_in(client)  # twelve hours after sign-in, however busy

        ctx.clock = lambda: start + timedelta(hours=13)
        assert sign_in(client, "ann@shop.example") == 303
        ctx.clock = lambda: start + timedelta(hours=15, minutes=1)
        assert not is_signed_in(client)  # two hours without a request


@pytest.mark.parametrize(("base_url", "settings", "headers", "secure"), [
    ("http://testserver", {}, {}, False),
    ("https://testserver", {}, {}, True),
    ("http://testserver", {}, {"X-Forwarded-Proto": "https"}, False),  # an untrusted header
    ("http://testserver", {"trust_proxy": True}, {"X-Forwarded-Proto": "https"}, True),
    ("http://testserver", {"public_url": "https://news.shop.example"}, {}, True),
], ids=["http", "https", "untrusted-proxy-header", "trusted-proxy", "https-public-url"])
def test_the_session_cookie_is_httponly_lax_and_secure_when_served_over_https(
        make_ctx, base_url: str, settings: dict[str, object], headers: dict[str, str],
        secure: bool) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(**settings)
    with client_for(ctx, base_url=base_url) as client:
        response = client.get("/sign-in", headers=headers)
    set_cookie = response.headers["set-cookie"]
    flags = {part.strip().split("=")[0].lower() for part in set_cookie.split(";")[1:]}
    assert {"httponly", "samesite", "path", "max-age"} <= flags
    assert "samesite=lax" in set_cookie.lower()
    assert ("secure" in flags) is secure
    assert ("strict-transport-security" in response.headers) is secure
