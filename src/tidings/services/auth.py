"""API tokens and people who sign in."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from tidings.errors import Conflict, Forbidden, InvalidInput, NotFound, Unauthorized
from tidings.services.context import Context
from tidings.store import auth as store

ROLES = ("admin", "manager")
_hasher = PasswordHasher()


@dataclass(frozen=True, kw_only=True)
class Actor:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"

    def require_admin(self) -> None:
        if not self.is_admin:
            raise Forbidden("Only an admin may do this.")


SYSTEM = Actor(name="system", role="admin")


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
    with ctx.tx() as conn:
        role = store.token_role(conn, _hash(token))
    if role is None:
        raise Unauthorized("The API token is not valid.")
    return Actor(name="token", role=role)


def create_user(ctx: Context, *, email: str, password: str, role: str = "manager") -> int:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", field="role")
    if len(password) < 8:
        raise InvalidInput("The password needs at least 8 characters.", field="password")
    email = email.strip().lower()
    if "@" not in email:
        raise InvalidInput("Give a valid email address.", field="email")
    with ctx.tx() as conn:
        if store.find_user(conn, email):
            raise Conflict(f"A user {email} already exists.", code="user_exists")
        return store.add_user(conn, email=email, password_hash=_hasher.hash(password), role=role,
                              now=ctx.now())


def list_users(ctx: Context) -> list[dict[str, Any]]:
    """The people who sign in, oldest first: ``{"id", "email", "role", "created_at"}``
    (never the password hash)."""
    with ctx.read() as conn:
        return [{"id": u["id"], "email": u["email"], "role": u["role"],
                 "created_at": u["created_at"].isoformat()} for u in store.list_users(conn)]


def sign_in(ctx: Context, *, email: str, password: str) -> Actor:
    with ctx.tx() as conn:
        user = store.find_user(conn, email.strip())
    if user is None:
        _hasher.hash(password)  # same cost whether or not the user exists
        raise Unauthorized("Wrong email or password.")
    try:
        _hasher.verify(user["password_hash"], password)
    except VerificationError:
        raise Unauthorized("Wrong email or password.") from None
    return Actor(name=user["email"], role=user["role"])
