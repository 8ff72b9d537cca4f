"""Signed-in web sessions, kept on the server so that they can end.

The browser's cookie (:mod:`tidings.web.session`) carries a random session
token; only its SHA-256 is stored, with the person, when it was created and
last used, and when it expires. A session is valid while:

- its row exists (sign-out deletes it) and is not revoked (removing a person
  deletes their rows; changing their role or resetting their password revokes
  them: :func:`end_all`);
- its person exists;
- it was used within ``TIDINGS_SESSION_IDLE_TIMEOUT`` seconds (2 hours), and
  ``TIDINGS_SESSION_LIFETIME`` (12 hours) has not passed since sign-in.

Checking a session is a read; "last used" is written at most once every
:data:`TOUCH_EVERY` seconds per session, so browsing does not queue for
SQLite's write lock on every page.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from tidings.services.context import Context
from tidings.store import sessions as store

#: Seconds between two writes of a session's "last used" time.
TOUCH_EVERY = 60


@dataclass(frozen=True, kw_only=True)
class SignedIn:
    """Who a valid session belongs to, as the database says now."""

    session_id: int
    user_id: int
    email: str
    role: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _idle(ctx: Context) -> timedelta:
    return timedelta(seconds=ctx.settings.session_idle_timeout)


def start(ctx: Context, *, user_id: int) -> str:
    """A new session for the person; returns its token (for the cookie only)."""
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    with ctx.tx() as conn:
        store.prune(conn, now=now, idle=_idle(ctx))
        store.add(conn, token_hash=_hash(token), user_id=user_id, now=now,
                  expires_at=now + timedelta(seconds=ctx.settings.session_lifetime))
    return token


def resolve(ctx: Context, token: str | None) -> SignedIn | None:
    """The person of a valid session (see the module docstring), or ``None``."""
    if not token:
        return None
    now = ctx.now()
    with ctx.read() as conn:
        row = store.find(conn, _hash(token))
    if row is None or row["revoked_at"] is not None or row["expires_at"] <= now \
            or row["last_seen_at"] + _idle(ctx) <= now:
        return None
    if (now - row["last_seen_at"]).total_seconds() >= TOUCH_EVERY:
        with ctx.tx() as conn:
            store.touch(conn, row["id"], now)
    return SignedIn(session_id=row["id"], user_id=row["user_id"], email=row["email"], role=row["role"])


def end(ctx: Context, token: str | None) -> None:
    """Sign-out: the session is deleted; its cookie, wherever copied, is refused."""
    if token:
        with ctx.tx() as conn:
            store.delete(conn, _hash(token))


def end_all(conn: sa.Connection, *, user_id: int, now: datetime) -> int:
    """Revoke every session of the person, in the caller's transaction; how many."""
    return store.revoke_all(conn, user_id, now)

