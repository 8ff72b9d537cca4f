"""People who sign in and API tokens: listing them never shows a secret, and a
revoked token is refused by the API at once."""

from __future__ import annotations

import pytest

from tidings.errors import NotFound, Unauthorized
from tidings.services import tokens, users


def test_people_are_listed_without_their_password_hash(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    users.create_user(ctx, email="Ann@Shop.example", password="long enough", role="admin")
    users.create_user(ctx, email="bob@shop.example", password="long enough")

    listed = users.list_users(ctx)

    assert [(u["email"], u["role"]) for u in listed] == [
        ("ann@shop.example", "admin"), ("bob@shop.example", "manager")]
    assert all(set(u) == {"id", "email", "role", "created_at"} for u in listed)


def test_tokens_are_listed_without_the_token_or_its_hash(make_ctx) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    export = tokens.create_token(ctx, name="export", role="manager")
    tokens.create_token(ctx, name="deploy", role="admin")

    listed = tokens.list_tokens(ctx)

    assert [(t["name"], t["role"]) for t in listed] == [("export", "manager"), ("deploy", "admin")]
    assert all(set(t) == {"id", "name", "role", "created_at"} for t in listed)
    assert export not in repr(listed)


def test_a_revoked_token_gets_401_and_the_others_keep_working(make_ctx, api_for) -> None:  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    export = tokens.create_token(ctx, name="export", role="manager")
    deploy = tokens.create_token(ctx, name="deploy", role="manager")
    api = api_for(ctx)
    api.as_token(export).get("/quota", expect=200)
    (export_id,) = [t["id"] for t in tokens.list_tokens(ctx) if t["name"] == "export"]

    tokens.revoke_token(ctx, export_id)

    refused = api.as_token(export).get("/quota", expect=401).json()["error"]
    assert refused == {"code": "unauthorized", "message": "The API token is not valid."}
    api.as_token(deploy).get("/quota", expect=200)
    assert [t["name"] for t in tokens.list_tokens(ctx)] == ["deploy"]
    with pytest.raises(Unauthorized):
        tokens.authenticate(ctx, export)
    with pytest.raises(NotFound) as again:
        tokens.revoke_token(ctx, export_id)
    assert again.value.code == "token_not_found"
