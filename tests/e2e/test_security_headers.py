"""Every response says how it may be used: a Content-Security-Policy without
inline script and no framing, nosniff, a referrer policy, and HSTS only over
https. No page loads scripts from elsewhere (no /docs or /redoc)."""

from __future__ import annotations

import re

import pytest
from fastapi.testclient import TestClient

from tidings.api.app import create_app
from tidings.services import users

PASSWORD = "long enough password"


def directives(policy: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for part in policy.split(";"):
        name, *values = part.split()
        found[name] = values
    return found


@pytest.mark.parametrize("path", ["/sign-in", "/mailings", "/api/v1/quota", "/api/v1/nothing",
                                  "/static/tidings.css", "/openapi.json", "/healthz", "/t/o/junk"])
def test_every_kind_of_response_forbids_inline_script_framing_and_sniffing(make_ctx, path: str) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(make_ctx()), follow_redirects=False) as client:
        response = client.get(path, headers={"Authorization": "Bearer admin-token"})
    policy = directives(response.headers["content-security-policy"])
    assert policy["frame-ancestors"] == ["'none'"]
    assert "'unsafe-inline'" not in policy["script-src"] and "'unsafe-eval'" not in policy["script-src"]
    assert policy["script-src"] == ["'self'"]
    assert policy["object-src"] == ["'none'"] and policy["base-uri"] == ["'none'"]
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["referrer-policy"] == "same-origin"
    assert "strict-transport-security" not in response.headers  # plain http


def test_the_tracking_pages_keep_their_own_stricter_policy(make_ctx) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(make_ctx())) as client:
        response = client.get("/u/junk")
    assert directives(response.headers["content-security-policy"])["default-src"] == ["'none'"]
    assert response.headers["referrer-policy"] == "no-referrer"


@pytest.mark.parametrize(("base_url", "settings", "headers"), [
    ("https://testserver", {}, {}),
    ("http://testserver", {"trust_proxy": True}, {"X-Forwarded-Proto": "https"}),
    ("http://testserver", {"public_url": "https://news.shop.example"}, {}),
], ids=["tls", "behind-a-trusted-proxy", "https-public-url"])
def test_hsts_is_sent_when_served_over_https(make_ctx, base_url: str, settings: dict[str, object],
                                             headers: dict[str, str]) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(make_ctx(**settings)), base_url=base_url) as client:
        response = client.get("/sign-in", headers=headers)
    assert response.headers["strict-transport-security"] == "max-age=31536000"


def test_an_untrusted_forwarded_proto_gets_no_hsts(make_ctx) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(make_ctx())) as client:
        response = client.get("/sign-in", headers={"X-Forwarded-Proto": "https"})
    assert "strict-transport-security" not in response.headers


def test_there_is_no_docs_page_loading_scripts_from_a_cdn(make_ctx) -> None:  # type: ignore[no-untyped-def]
    with TestClient(create_app(make_ctx())) as client:
        assert client.get("/docs").status_code == 404
        assert client.get("/redoc").status_code == 404
        assert client.get("/openapi.json").status_code == 200


def test_no_page_has_an_inline_script_or_event_handler(make_ctx) -> None:  # type: ignore[no-untyped-def]
    """The pages as served; the browser test below also loads them under the policy."""
    ctx = make_ctx()
    users.create_user(ctx, email="ann@shop.example", password=PASSWORD, role="admin")
    with TestClient(create_app(ctx)) as client:
        token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/sign-in").text)
        assert token
        client.post("/sign-in", data={"email": "ann@shop.example", "password": PASSWORD,
                                      "csrf_token": token.group(1)})
        pages = {path: client.get(path).text for path in (
            "/sign-in", "/mailings", "/mailings/new", "/customers", "/customers/import", "/segments",
            "/segments/new", "/templates", "/templates/new", "/quota", "/domains", "/admin/people",
            "/admin/audit")}
    for path, html in pages.items():
        assert "<h1>" in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), f"inline script on {path}"
        assert not re.search(r"\son[a-z]+\s*=", html), f"event handler attribute on {path}"
        assert "javascript:" not in html, path
