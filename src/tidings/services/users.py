"""People who sign in to the web UI: created, listed, signed in (argon2)."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import VerificationError

from tidings.domain.actors import ROLES, Actor
from tidings.errors import Conflict, InvalidInput, Unauthorized
from tidings.services.context import Context
from tidings.store import users as store

_hasher = PasswordHasher()


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
    with ctx.read() as conn:
        user = store.find_user(conn, email.strip())
    if user is None:
        _hasher.hash(password)  # same cost whether or not the user exists
        raise Unauthorized("Wrong email or password.")
    try:
        _hasher.verify(user["password_hash"], password)
    except VerificationError:
        raise Unauthorized("Wrong email or password.") from None
    return Actor(name=user["email"], role=user["role"])
