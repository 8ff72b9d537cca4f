"""Who may call each route of the app, from the routing table itself.

:data:`RULES` says, for every (method, path) the app serves, who may call it:

- ``PUBLIC``: anyone (tracking links, sign-in, static files, the OpenAPI document);
- ``SIGNED_IN``: any valid API token (``/api/v1``) or any signed-in person (pages);
- ``ADMIN``: an admin token or an admin's session only.

The first test fails for a route that has no rule (add it to :data:`RULES`), or
a rule for a route that is gone. The second calls every route as each actor,
with an empty body and ``1`` for every id, and checks the answer:

| actor | public | signed in | admin |
|---|---|---|---|
| no token, a bad token, a revoked token (API) | not 401/403 | 401 | 401 |
| a manager's token | not 401/403 | not 401/403 | 403 |
| an admin's token | not 401/403 | not 401/403 | not 401/403 |
| no session (pages) | not 401/403 | to sign-in | to sign-in |
| a manager's session | not 401/403 | not 401/403, not to sign-in | 403 |
| an admin's session | not 401/403 | not 401/403, not to sign-in | not 401/403, not to sign-in |

and never a 5xx: "not 401/403" answers may be 200, or a 4xx about the empty
body or the missing object (422, 404, 409).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tidings.api.app import create_app
from tidings.domain.actors import SYSTEM
from tidings.services import sessions as server_sessions
from tidings.services import tokens, users
from tidings.services.context import Context
from tidings.web import session as cookies
from tidings.web.session import Session

PUBLIC, SIGNED_IN, ADMIN = "public", "signed in", "admin"

RULES: dict[tuple[str, str], str] = {
    # -- the API: a bearer token
    ("GET", "/openapi.json"): PUBLIC,
    ("HEAD", "/openapi.json"): PUBLIC,
    ("POST", "/api/v1/customers"): SIGNED_IN,
    ("POST", "/api/v1/customers/import"): SIGNED_IN,
    ("PATCH", "/api/v1/customers/{customer_id}"): SIGNED_IN,
    ("DELETE", "/api/v1/customers/{customer_id}"): SIGNED_IN,
    ("POST", "/api/v1/customers/{customer_id}/erase"): SIGNED_IN,
    ("GET", "/api/v1/customers/export.csv"): SIGNED_IN,
    ("DELETE", "/api/v1/segments/{segment_id}"): SIGNED_IN,
    ("POST", "/api/v1/segments/{segment_id}/copy"): SIGNED_IN,
    ("GET", "/api/v1/customers"): SIGNED_IN,
    ("GET", "/api/v1/customers/{customer_id}"): SIGNED_IN,
    ("POST", "/api/v1/segments"): SIGNED_IN,
    ("GET", "/api/v1/segments"): SIGNED_IN,
    ("GET", "/api/v1/segments/{segment_id}"): SIGNED_IN,
    ("PATCH", "/api/v1/segments/{segment_id}"): SIGNED_IN,
    ("GET", "/api/v1/segments/{segment_id}/count"): SIGNED_IN,
    ("POST", "/api/v1/segments/count"): SIGNED_IN,
    ("POST", "/api/v1/templates"): SIGNED_IN,
    ("GET", "/api/v1/templates"): SIGNED_IN,
    ("GET", "/api/v1/templates/{template_id}"): SIGNED_IN,
    ("PATCH", "/api/v1/templates/{template_id}"): SIGNED_IN,
    ("POST", "/api/v1/templates/{template_id}/preview"): SIGNED_IN,
    ("GET", "/api/v1/quota"): SIGNED_IN,
    ("POST", "/api/v1/quota/topup"): ADMIN,
    ("POST", "/api/v1/mailings"): SIGNED_IN,
    ("GET", "/api/v1/mailings"): SIGNED_IN,
    ("GET", "/api/v1/mailings/{mailing_id}"): SIGNED_IN,
    ("PATCH", "/api/v1/mailings/{mailing_id}"): SIGNED_IN,
    ("DELETE", "/api/v1/mailings/{mailing_id}"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/send"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/schedule"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/cancel"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/resume"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/send-unknown"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/copy"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/steps"): SIGNED_IN,
    ("GET", "/api/v1/mailings/{mailing_id}/stats"): SIGNED_IN,
    ("POST", "/api/v1/mailings/{mailing_id}/test"): SIGNED_IN,
    ("GET", "/api/v1/mailings/{mailing_id}/checklist"): SIGNED_IN,
    ("GET", "/api/v1/mailings/{mailing_id}/sms-parts"): SIGNED_IN,
    ("GET", "/api/v1/media"): SIGNED_IN,
    ("POST", "/api/v1/media"): SIGNED_IN,
    ("GET", "/api/v1/templates/starters"): SIGNED_IN,
    ("GET", "/api/v1/templates/variables"): SIGNED_IN,
    ("POST", "/api/v1/orders"): SIGNED_IN,
    ("POST", "/api/v1/orders/import"): SIGNED_IN,
    ("GET", "/api/v1/orders/{order_id}"): SIGNED_IN,
    ("POST", "/api/v1/domains"): SIGNED_IN,
    ("GET", "/api/v1/domains"): SIGNED_IN,
    ("GET", "/api/v1/domains/{domain_id}"): SIGNED_IN,
    ("DELETE", "/api/v1/domains/{domain_id}"): ADMIN,
    ("POST", "/api/v1/domains/{domain_id}/verify"): SIGNED_IN,
    ("GET", "/api/v1/domains/{domain_id}/health"): SIGNED_IN,
    ("POST", "/api/v1/events"): SIGNED_IN,
    ("GET", "/api/v1/users"): ADMIN,
    ("POST", "/api/v1/users"): ADMIN,
    ("GET", "/api/v1/users/{user_id}"): ADMIN,
    ("PATCH", "/api/v1/users/{user_id}"): ADMIN,
    ("DELETE", "/api/v1/users/{user_id}"): ADMIN,
    ("POST", "/api/v1/users/{user_id}/password-reset"): ADMIN,
    ("GET", "/api/v1/test-addresses"): SIGNED_IN,
    ("POST", "/api/v1/test-addresses"): ADMIN,
    ("DELETE", "/api/v1/test-addresses/{entry_id}"): ADMIN,
    ("GET", "/api/v1/audit"): ADMIN,
    # -- anyone: static files, health, tracking links, sign-in and reset links
    ("GET", "/static/{name}"): PUBLIC,
    ("GET", "/favicon.ico"): PUBLIC,
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/sign-in"): PUBLIC,
    ("POST", "/sign-in"): PUBLIC,
    ("GET", "/reset/{token}"): PUBLIC,
    ("POST", "/reset/{token}"): PUBLIC,
    ("GET", "/t/o/{token}"): PUBLIC,
    ("GET", "/s/{token}"): PUBLIC,  # a short link in an SMS
    ("HEAD", "/s/{token}"): PUBLIC,
    ("GET", "/media/{key}"): PUBLIC,  # images in messages: mail clients fetch them
    ("HEAD", "/t/o/{token}"): PUBLIC,
    ("GET", "/t/c/{token}"): PUBLIC,
    ("HEAD", "/t/c/{token}"): PUBLIC,
    ("GET", "/u/{token}"): PUBLIC,
    ("GET", "/u/{token}/preferences"): PUBLIC,
    ("POST", "/u/{token}/preferences"): PUBLIC,
    ("POST", "/u/{token}/resubscribe"): PUBLIC,
    ("GET", "/shop/logo"): PUBLIC,  # shown on the customers' pages
    ("POST", "/u/{token}"): PUBLIC,
    ("POST", "/sign-out"): PUBLIC,  # signing out without a session changes nothing
    # -- pages: a session
    ("GET", "/admin/people"): ADMIN,
    ("POST", "/admin/people"): ADMIN,
    ("POST", "/admin/people/{user_id}/role"): ADMIN,
    ("POST", "/admin/people/{user_id}/remove"): ADMIN,
    ("POST", "/admin/people/{user_id}/reset"): ADMIN,
    ("POST", "/admin/tokens"): ADMIN,
    ("POST", "/admin/tokens/{token_id}/revoke"): ADMIN,
    ("POST", "/admin/test-addresses"): ADMIN,
    ("POST", "/admin/test-addresses/{entry_id}/remove"): ADMIN,
    ("GET", "/admin/audit"): ADMIN,
    ("GET", "/customers"): SIGNED_IN,
    ("GET", "/customers/import"): SIGNED_IN,
    ("GET", "/customers/import/{import_id}"): SIGNED_IN,
    ("POST", "/customers/import/{import_id}"): SIGNED_IN,
    ("GET", "/customers/import/{import_id}/progress"): SIGNED_IN,
    ("GET", "/customers/new"): SIGNED_IN,
    ("POST", "/customers/new"): SIGNED_IN,
    ("GET", "/customers/{customer_id}/edit"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/edit"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/delete"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/erase"): SIGNED_IN,
    ("POST", "/customers/{customer_id}/subscription"): SIGNED_IN,
    ("GET", "/customers/export.csv"): SIGNED_IN,
    ("POST", "/segments/{segment_id}/copy"): SIGNED_IN,
    ("POST", "/segments/{segment_id}/delete"): SIGNED_IN,
    ("GET", "/settings"): ADMIN,
    ("POST", "/settings"): ADMIN,
    ("POST", "/customers/import"): SIGNED_IN,
    ("GET", "/customers/{customer_id}"): SIGNED_IN,
    ("GET", "/segments"): SIGNED_IN,
    ("GET", "/segments/new"): SIGNED_IN,
    ("POST", "/segments/new"): SIGNED_IN,
    ("GET", "/segments/row"): SIGNED_IN,
    ("POST", "/segments/count"): SIGNED_IN,
    ("GET", "/segments/{segment_id}"): SIGNED_IN,
    ("POST", "/segments/{segment_id}"): SIGNED_IN,
    ("GET", "/templates"): SIGNED_IN,
    ("GET", "/templates/new"): SIGNED_IN,
    ("POST", "/templates/new"): SIGNED_IN,
    ("POST", "/templates/preview"): SIGNED_IN,
    ("GET", "/templates/{template_id}"): SIGNED_IN,
    ("POST", "/templates/{template_id}"): SIGNED_IN,
    ("POST", "/templates/{template_id}/test-send"): SIGNED_IN,
    ("POST", "/templates/{template_id}/editor"): SIGNED_IN,
    ("POST", "/templates/media"): SIGNED_IN,
    ("GET", "/mailings/{mailing_id}/checklist"): SIGNED_IN,
    ("GET", "/mailings/{mailing_id}/checklist/links"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/test-send"): SIGNED_IN,
    ("GET", "/mailings"): SIGNED_IN,
    ("GET", "/mailings/new"): SIGNED_IN,
    ("POST", "/mailings/new"): SIGNED_IN,
    ("GET", "/mailings/{mailing_id}"): SIGNED_IN,
    ("GET", "/mailings/{mailing_id}/status"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/edit"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/send"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/schedule"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/cancel"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/resume"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/send-unknown"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/copy"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/delete"): SIGNED_IN,
    ("POST", "/mailings/{mailing_id}/steps"): SIGNED_IN,
    ("GET", "/quota"): SIGNED_IN,
    ("POST", "/quota/topup"): ADMIN,
    ("GET", "/domains"): SIGNED_IN,
    ("POST", "/domains"): SIGNED_IN,
    ("POST", "/domains/{domain_id}/verify"): SIGNED_IN,
}

#: Public routes whose own answer is a 401: the sign-in form, to a wrong password.
OWN_401 = {("POST", "/sign-in")}

#: What stands for a path parameter: an id that exists (see ``arranged``) or a junk token.
PARAMETERS = {"name": "tidings.css", "token": "junk"}


def every_route(routes: Iterable[Any]) -> Iterator[tuple[str, str]]:
    """``(method, path)`` of every route the app serves, included routers flattened."""
    for route in routes:
        if hasattr(route, "effective_route_contexts"):  # a router included in the app
            for context in route.effective_route_contexts():
                for method in sorted(context.methods or ()):
                    yield method, context.path
        elif hasattr(route, "methods") and hasattr(route, "path"):
            for method in sorted(route.methods or ()):
                yield method, route.path
        elif hasattr(route, "routes"):  # a mount
            yield from every_route(route.routes)
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")


def concrete(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: PARAMETERS.get(m.group(1), "1"), path)


def is_api(path: str) -> bool:
    return path.startswith("/api/")


def test_every_route_of_the_app_says_who_may_call_it(make_ctx) -> None:  # type: ignore[no-untyped-def]
    served = set(every_route(create_app(make_ctx()).routes))
    missing = sorted(served - set(RULES))
    stale = sorted(set(RULES) - served)
    assert not missing, (
        "routes without an access rule: add each to RULES in tests/e2e/test_route_matrix.py as "
        "PUBLIC, SIGNED_IN or ADMIN:\n" + "\n".join(f'    ("{m}", "{p}"): ...,' for m, p in missing))
    assert not stale, f"RULES names routes the app no longer serves: {stale}"


class Actors:
    """The callers: API tokens and browser sessions of each kind, on ``ctx``'s database.
    Id 1 of people and tokens is a bystander, so that calls on "1" change nobody who acts."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        users.create_user(ctx, email="bystander@shop.example", password="long enough", actor=SYSTEM)
        tokens.create_token(ctx, name="bystander", actor=SYSTEM)
        revoked = tokens.create_token(ctx, name="revoked", actor=SYSTEM)
        tokens.revoke_token(ctx, max(t["id"] for t in tokens.list_tokens(ctx)), actor=SYSTEM)
        self.tokens = {
            "no token": None, "a bad token": "tid_not-a-token", "a revoked token": revoked,
            "a manager's token": tokens.create_token(ctx, name="manager", actor=SYSTEM),
            "an admin's token": tokens.create_token(ctx, name="admin", role="admin", actor=SYSTEM),
        }
        self.people = {
            "a manager's session": users.create_user(ctx, email="m@shop.example", password="long enough",
                                                     actor=SYSTEM),
            "an admin's session": users.create_user(ctx, email="a@shop.example", password="long enough",
                                                    role="admin", actor=SYSTEM),
        }

    def session_cookie(self, who: str) -> tuple[str, str]:
        """A fresh session for ``who`` (each call may end one: sign-out, a reset) and its CSRF token."""
        user_id = self.people.get(who)
        session = Session(token=server_sessions.start(self.ctx, user_id=user_id) if user_id else None)
        return cookies.dump(session, self.ctx.secret), session.csrf


def expected(rule: str, actor: str) -> str:
    """``"denied 401"``, ``"denied 403"``, ``"to sign-in"`` or ``"allowed"``."""
    if rule == PUBLIC:
        return "allowed"
    if actor in ("no token", "a bad token", "a revoked token"):
        return "denied 401"
    if actor == "no session":
        return "to sign-in"
    if rule == ADMIN and actor in ("a manager's token", "a manager's session"):
        return "denied 403"
    return "allowed"


def judge(response: Any) -> str:
    location = response.headers.get("location", "")
    if response.status_code in (401, 403):
        return f"denied {response.status_code}"
    if response.status_code in (302, 303) and location.startswith("/sign-in?") or location == "/sign-in":
        return "to sign-in"
    if response.status_code >= 500:
        return f"server error {response.status_code}"
    return "allowed"


def test_every_route_answers_each_caller_as_its_rule_says(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx(admin_token=None)
    actors = Actors(ctx)
    name = cookies.cookie_name(ctx.secret)
    wrong: list[str] = []
    with TestClient(create_app(ctx), follow_redirects=False) as client:
        for method, path in sorted(every_route(client.app.routes)):
            rule = RULES.get((method, path))
            if rule is None:
                continue  # the test above names it
            url = concrete(path)
            if is_api(path):
                callers = actors.tokens
            else:
                callers = {who: None for who in ("no session", "a manager's session", "an admin's session")}
            for who, token in callers.items():
                client.cookies.clear()
                if is_api(path):
                    headers = {"Authorization": f"Bearer {token}"} if token else {}
                    response = client.request(method, url, headers=headers)
                else:
                    cookie, csrf = actors.session_cookie(who)
                    response = client.request(method, url, headers={"Cookie": f"{name}={cookie}"},
                                              data={"csrf_token": csrf} if method == "POST" else None)
                got, want = judge(response), expected(rule, who)
                # a public page may send a visitor to sign-in ("/" does), never an error
                if rule == PUBLIC and (got == "to sign-in" or (method, path) in OWN_401
                                       and got == "denied 401"):
                    got = "allowed"
                if got != want:
                    wrong.append(f"{method} {path} as {who}: {got} ({response.status_code}), "
                                 f"expected {want} ({rule})")
    assert not wrong, "\n".join(wrong)


@pytest.mark.parametrize("actor", ["no session", "a manager's session"])
def test_the_table_itself_can_fail(actor: str) -> None:
    """A signed-in route answered 200 to nobody, or an admin route to a manager, is caught."""
    class Answer:
        status_code = 200
        headers: dict[str, str] = {}

    assert judge(Answer()) != expected(SIGNED_IN if actor == "no session" else ADMIN, actor)
