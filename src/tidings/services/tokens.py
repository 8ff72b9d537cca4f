"""API tokens: created (shown once), listed, revoked, and checked on each request.

Only a token's SHA-256 is stored. Checking one is a single indexed read in a
read-only transaction, which on SQLite never waits for (or takes) the write
lock, so a flood of bad tokens does not slow the writers down; nothing is
cached, so a revoked token is refused from the next request on, in every process.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from tidings.domain.actors import ROLES, SYSTEM, Actor
from tidings.errors import InvalidInput, NotFound, Unauthorized
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import tokens as store

#: The actor name of the token in ``TIDINGS_ADMIN_TOKEN`` (never its value).
ENV_ADMIN = "TIDINGS_ADMIN_TOKEN"


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def token_actor_name(token_id: int, name: str) -> str:
    """How the audit log names a stored token: ``API token “export” (#3)``."""
    return f"API token “{name}” (#{token_id})"


def create_token(ctx: Context, *, name: str, role: str = "manager", actor: Actor = SYSTEM) -> str:
    """A new bearer token; only its SHA-256 is stored. Admins only."""
    actor.require_admin()
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", field="role")
    name = name.strip()
    if not name or len(name) > 255:
        raise InvalidInput("Give the token a name of 1 to 255 characters.", field="name")
    token = "tid_" + secrets.token_urlsafe(32)
    with ctx.tx() as conn:
        token_id = store.add_token(conn, name=name, role=role, token_hash=_hash(token), now=ctx.now())
        audit.record(conn, actor, "token.create", token_actor_name(token_id, name),
                     {"token_id": token_id, "role": role}, at=ctx.now())
    return token


def list_tokens(ctx: Context) -> list[dict[str, Any]]:
    """Every stored API token, oldest first: ``{"id", "name", "role", "created_at"}``.
    The token itself cannot be shown (only its hash is stored) and its hash never is."""
    with ctx.read() as conn:
        return [{"id": t["id"], "name": t["name"], "role": t["role"],
                 "created_at": t["created_at"].isoformat()} for t in store.list_tokens(conn)]


def revoke_token(ctx: Context, token_id: int, *, actor: Actor = SYSTEM) -> None:
    """Delete the token at once: from now on it gets 401. Admins only. Raises
    ``NotFound(code="token_not_found")`` when there is no such token (already revoked)."""
    actor.require_admin()
    with ctx.tx() as conn:
        found = store.get_token(conn, token_id)
        if found is None or not store.delete_token(conn, token_id):
            raise NotFound(f"There is no API token {token_id}; it may have been revoked already.",
                           code="token_not_found")
        audit.record(conn, actor, "token.revoke", token_actor_name(token_id, found["name"]),
                     {"token_id": token_id}, at=ctx.now())


def env_admin_actor(ctx: Context, token: str) -> Actor | None:
    """The admin of ``TIDINGS_ADMIN_TOKEN`` if ``token`` is it (compared in
    constant time), else None. Reads no database: a caller on the event loop may
    ask it before it sends the stored tokens' lookup to a thread."""
    admin = ctx.settings.admin_token
    if admin and hmac.compare_digest(token.encode(), admin.encode()):
        return Actor(name=ENV_ADMIN, role="admin")
    return None


def authenticate(ctx: Context, token: str | None) -> Actor:
    """The actor of a bearer token: ``TIDINGS_ADMIN_TOKEN`` (compared in constant
    time) or a stored token. Raises ``Unauthorized``; the message never repeats
    the token."""
    if not token:
        raise Unauthorized("Send an API token as 'Authorization: Bearer TOKEN'.")
    env_admin = env_admin_actor(ctx, token)
    if env_admin is not None:
        return env_admin
    with ctx.read() as conn:
        found = store.token_by_hash(conn, _hash(token))
    if found is None:
        raise Unauthorized("The API token is not valid.")
    return Actor(name=token_actor_name(found["id"], found["name"]), role=found["role"])
