"""``/api/v1/users``: admins list, add, re-role, remove and reset people; the last
admin stays; a reset link is mailed when there is a mail server, else returned."""

from __future__ import annotations

import re

from tidings.domain.actors import SYSTEM
from tidings.services import tokens, users


def test_a_manager_token_may_not_touch_people(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    ann = users.create_user(ctx, email="ann@shop.example", password="long enough", role="admin")
    manager = api_for(ctx).as_token(tokens.create_token(ctx, name="shop", role="manager"))

    for method, path, body in (("GET", "/users", None), ("GET", f"/users/{ann}", None),
                               ("POST", "/users", {"email": "x@shop.example", "password": "long enough"}),
                               ("PATCH", f"/users/{ann}", {"role": "manager"}),
                               ("DELETE", f"/users/{ann}", None),
                               ("POST", f"/users/{ann}/password-reset", None)):
        refused = manager.request(method, path, 403, json=body).json()["error"]
        assert refused == {"code": "forbidden", "message": "Only an admin may do this."}
    assert [(u["email"], u["role"]) for u in users.list_users(ctx)] == [("ann@shop.example", "admin")]


def test_an_admin_adds_re_roles_and_removes_people(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    api = api_for(make_ctx())

    bob = api.ok("POST", "/users", {"email": "Bob@Shop.example", "password": "long enough"}, status=201)
    taken = api.post("/users", {"email": "bob@shop.example", "password": "long enough"}, expect=409)
    short = api.post("/users", {"email": "cid@shop.example", "password": "short"}, expect=422)
    admin = api.ok("PATCH", f"/users/{bob['id']}", {"role": "admin"})
    bad_role = api.request("PATCH", f"/users/{bob['id']}", 422, json={"role": "owner"})

    assert (bob["email"], bob["role"]) == ("bob@shop.example", "manager")
    assert set(bob) == {"id", "email", "role", "created_at"}
    assert taken.json()["error"]["code"] == "user_exists"
    assert short.json()["error"]["field"] == "password"
    assert admin["role"] == "admin" and bad_role.json()["error"]["field"] == "role"
    assert api.ok("GET", "/users")["users"] == [admin]
    api.request("DELETE", f"/users/{bob['id']}", 409)  # the only admin
    cid = api.ok("POST", "/users", {"email": "cid@shop.example", "password": "long enough",
                                    "role": "admin"}, status=201)
    api.request("DELETE", f"/users/{bob['id']}", 204)
    assert api.request("GET", f"/users/{bob['id']}", 404).json()["error"]["code"] == "user_not_found"
    assert api.ok("GET", "/users")["users"] == [cid]


def test_the_last_admin_can_be_neither_demoted_nor_removed(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    api = api_for(ctx)
    ann = users.create_user(ctx, email="ann@shop.example", password="long enough", role="admin")
    bob = users.create_user(ctx, email="bob@shop.example", password="long enough", role="manager")

    demoted = api.request("PATCH", f"/users/{ann}", 409, json={"role": "manager"}).json()["error"]
    removed = api.request("DELETE", f"/users/{ann}", 409).json()["error"]

    assert demoted["code"] == removed["code"] == "last_admin"
    assert demoted["message"] == ("ann@shop.example is the only admin and cannot become a manager: make "
                                  "someone else an admin first, so that someone can still manage people.")
    api.request("DELETE", f"/users/{bob}", 204)  # a manager can go
    api.ok("PATCH", f"/users/{ann}", {"role": "admin"})  # no change is no demotion
    assert [(u["email"], u["role"]) for u in users.list_users(ctx)] == [("ann@shop.example", "admin")]


def test_a_reset_link_is_returned_when_mail_goes_to_the_outbox_and_works_once(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    api = api_for(ctx)
    bob = users.create_user(ctx, email="bob@shop.example", password="old password", actor=SYSTEM)

    reset = api.ok("POST", f"/users/{bob}/password-reset")

    assert (reset["mailed"], reset["email"], reset["mail_problem"]) == (False, "bob@shop.example", None)
    path = reset["link"].removeprefix("http://tidings.test")
    page = api.client.get(path)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert page.status_code == 200 and csrf
    chosen = api.client.post(path, data={"password": "new password", "password_again": "new password",
                                         "csrf_token": csrf.group(1)}, follow_redirects=False)
    assert chosen.status_code == 303
    assert users.sign_in(ctx, email="bob@shop.example", password="new password").user_id == bob
    assert api.client.get(path).status_code == 404


def test_a_reset_link_is_mailed_when_there_is_a_mail_server(make_ctx, api_for, smtp_server) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    bob = users.create_user(ctx, email="bob@shop.example", password="old password", actor=SYSTEM)

    reset = api.ok("POST", f"/users/{bob}/password-reset")

    assert (reset["mailed"], reset["link"]) == (True, None)
    (received,) = smtp_server.messages
    assert received.rcpt == "bob@shop.example"
    assert received.message["Subject"] == "Choose a new password for Tidings"
    link = re.search(r"http://tidings\.test/reset/\S+", received.message.get_content())
    assert link
    assert api.client.get(link.group(0).removeprefix("http://tidings.test")).status_code == 200
