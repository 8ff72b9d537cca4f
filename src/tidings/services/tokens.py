"""API tokens: created (shown once), listed, revoked, and checked on each request."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from tidings.domain.actors import ROLES, Actor
from tidings.errors import InvalidInput, NotFound, Unauthorized
from tidings.services.context import Context
from tidings.store import tokens as store


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(ctx: Context, *, name: str, role: str = "manager") -> str:
    """A new bearer token; only its SHA-256 is stored."""
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", field="role")
    token = "tid_" + secrets.token_urlsafe(32)
    with ctx.tx() as conn:
        store.add_token(conn, name=name, role=role, token_hash=_hash(token), now=ctx.now())
    return token


def list_tokens(ctx: Context) -> list[dict[str, Any]]:
    """Every stored API token, oldest first: ``{"id", "name", "role", "created_at"}``.
    The token itself cannot be shown (only its hash is stored) and its hash never is."""
    with ctx.read() as conn:
        return [{"id": t["id"], "name": t["name"], "role": t["role"],
                 "created_at": t["created_at"].isoformat()} for t in store.list_tokens(conn)]


def revoke_token(ctx: Context, token_id: int) -> None:
    """Delete the token at once: from now on it gets 401. Raises
    ``NotFound(code="token_not_found")`` when there is no such token (already revoked)."""
    with ctx.tx() as conn:
        if not store.delete_token(conn, token_id):
            raise NotFound(f"There is no API token {token_id}; it may have been revoked already.",
                           code="token_not_found")


def authenticate(ctx: Context, token: str | None) -> Actor:
    if not token:
        raise Unauthorized("Send an API token as 'Authorization: Bearer TOKEN'.")
    admin = ctx.settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Actor(name="TIDINGS_ADMIN_TOKEN", role="admin")
    with ctx.read() as conn:
        role = store.token_role(conn, _hash(token))
    if role is None:
        raise Unauthorized("The API token is not valid.")
    return Actor(name="token", role=role)


