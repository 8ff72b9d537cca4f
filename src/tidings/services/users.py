"""People who sign in to the web UI: created, listed, signed in (argon2),
given another role, removed, and sent a one-time link to choose a new password.

Rules:

- An admin cannot demote or remove the last admin (``409 last_admin``): the
  web UI always keeps someone who can manage people.
- Changing a person's role, removing them, or resetting their password ends
  their sessions at once (:func:`tidings.services.sessions.end_all`).
- A reset makes the old password stop working and gives a link, valid
  :data:`RESET_VALID`, to choose a new one; it is mailed to the person when
  ``TIDINGS_SMTP_URL`` names a mail server, and otherwise given to whoever
  reset it (the admin, or ``tidings user reset``) to pass on.
- Sign-in throttling: after :data:`~tidings.domain.throttling.LOCK_AFTER`
  wrong passwords in a row for one address typed, that address is locked
  (:func:`~tidings.domain.throttling.lockout`: 15 minutes, then longer), for
  addresses of nobody too, so a lockout tells nobody who has an account.
  Setting a new password through a reset link lifts it.
- At most :data:`HASHES_AT_ONCE` argon2 hashes run at a time in a process (each
  takes 64 MiB): more sign-ins wait their turn, and are refused (429) after
  :data:`HASH_WAIT` seconds.

Every change is in the audit log (:mod:`tidings.services.audit`).
"""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from email_validator import EmailNotValidError, validate_email

from tidings.domain.actors import ROLES, SYSTEM, Actor
from tidings.domain.throttling import FORGET_AFTER, in_words, lockout
from tidings.errors import Conflict, InvalidInput, NotFound, RateLimited, Unauthorized
from tidings.services import audit, sessions
from tidings.services.context import Context
from tidings.store import users as store
from tidings.transports.base import Envelope, Result
from tidings.transports.factory import make_transport
from tidings.transports.mime import MessageFactory

_hasher = PasswordHasher()
#: argon2 hashes running at once in this process, at most (64 MiB each).
HASHES_AT_ONCE = 4
#: Seconds a sign-in waits for its turn to hash before it is refused.
HASH_WAIT = 15.0
_hashing = threading.BoundedSemaphore(HASHES_AT_ONCE)
#: How long a password reset link works.
RESET_VALID = timedelta(hours=24)
#: A password hash that no password matches: set by a reset until a new one is chosen.
_NO_PASSWORD = "!reset"

T = TypeVar("T")


def _bounded(work: Callable[[], T]) -> T:
    """Run an argon2 ``work`` when one of :data:`HASHES_AT_ONCE` places is free."""
    if not _hashing.acquire(timeout=HASH_WAIT):
        raise RateLimited("Too many sign-ins at once; try again in a moment.", retry_after=5,
                          code="busy")
    try:
        return work()
    finally:
        _hashing.release()


def _hash(password: str) -> str:
    return _bounded(lambda: _hasher.hash(password))


def _check_password(password: str) -> None:
    if len(password) < 8:
        raise InvalidInput("The password needs at least 8 characters.", field="password")
    if len(password) > 1024:
        raise InvalidInput("The password can have at most 1,024 characters.", field="password")


def _public(user: dict[str, Any]) -> dict[str, Any]:
    return {"id": user["id"], "email": user["email"], "role": user["role"],
            "created_at": user["created_at"].isoformat()}


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise InvalidInput(f"role must be one of {', '.join(ROLES)}.", field="role",
                           manager_message="Choose Manager or Admin.")


def create_user(ctx: Context, *, email: str, password: str, role: str = "manager",
                actor: Actor = SYSTEM) -> int:
    """A new person with that email, password (8 characters or more) and role; their id.
    Raises ``InvalidInput`` (``email``, ``password``, ``role``), ``Conflict(code="user_exists")``
    and ``Forbidden`` unless ``actor`` is an admin."""
    actor.require_admin()
    _check_role(role)
    _check_password(password)
    try:
        email = validate_email(email.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"email: {exc}", field="email", manager_message=str(exc)) from None
    password_hash = _hash(password)
    with ctx.tx() as conn:
        if store.find_user(conn, email):
            raise Conflict(f"A user {email} already exists.", code="user_exists")
        user_id = store.add_user(conn, email=email, password_hash=password_hash, role=role,
                                 now=ctx.now())
        audit.record(conn, actor, "user.create", email, {"user_id": user_id, "role": role},
                     at=ctx.now())
        return user_id


def list_users(ctx: Context) -> list[dict[str, Any]]:
    """The people who sign in, oldest first: ``{"id", "email", "role", "created_at"}``
    (never the password hash)."""
    with ctx.read() as conn:
        return [_public(u) for u in store.list_users(conn)]


def get_user(ctx: Context, user_id: int) -> dict[str, Any]:
    """One person as :func:`list_users` shows them; ``NotFound(code="user_not_found")``."""
    with ctx.read() as conn:
        return _public(_get(conn, user_id))


def _get(conn: sa.Connection, user_id: int, *, lock: bool = False) -> dict[str, Any]:
    user = store.get_user(conn, user_id, lock=lock)
    if user is None:
        raise NotFound(f"There is no person {user_id}; they may have been removed already.",
                       code="user_not_found")
    return user


# -- signing in -------------------------------------------------------------------------


def _locked(wait: timedelta) -> RateLimited:
    seconds = wait.total_seconds()
    return RateLimited(f"Too many attempts for this account: try again in {in_words(seconds)}.",
                       retry_after=seconds, code="account_locked")


def sign_in(ctx: Context, *, email: str, password: str) -> Actor:
    """The person with that email and password. Raises ``Unauthorized`` ("Wrong
    email or password.") and ``RateLimited(code="account_locked")`` while the
    address typed is locked after too many failures (the password is then not
    even checked), or ``RateLimited(code="busy")`` when too many hashes wait."""
    typed = email.strip().lower()[:320]
    now = ctx.now()
    with ctx.read() as conn:
        user = store.find_user(conn, typed)
        failed = store.failures(conn, typed)
    if failed and failed["locked_until"] is not None and failed["locked_until"] > now:
        raise _locked(failed["locked_until"] - now)
    if not _bounded(lambda: _matches(user, password)):
        lock = _count_failure(ctx, typed, now)
        if lock is not None:
            raise _locked(lock)
        raise Unauthorized("Wrong email or password.")
    assert user is not None
    if failed:
        with ctx.tx() as conn:
            store.clear_failures(conn, typed)
    return Actor(name=user["email"], role=user["role"], user_id=user["id"])


def _matches(user: dict[str, Any] | None, password: str) -> bool:
    if user is None:
        _hasher.hash(password)  # the same cost whether or not the person exists
        return False
    try:
        return bool(_hasher.verify(user["password_hash"], password))
    except (VerificationError, InvalidHashError):
        if user["password_hash"] == _NO_PASSWORD:
            _hasher.hash(password)
        return False


def _count_failure(ctx: Context, typed: str, now: datetime) -> timedelta | None:
    """Count a failed sign-in for the address typed; how long it is now locked, if it is."""
    with ctx.tx() as conn:
        count = store.count_failure(conn, typed, now=now, forget_before=now - FORGET_AFTER)
        lock = lockout(count)
        if lock is not None:
            store.lock_until(conn, typed, now + lock)
        store.forget_failures_before(conn, now - FORGET_AFTER, now=now)
    return lock


# -- roles and removal --------------------------------------------------------------------


def _only_admin(email: str, what: str) -> Conflict:
    return Conflict(f"{email} is the only admin and cannot {what}: make someone else an admin "
                    "first, so that someone can still manage people.", code="last_admin")


def change_role(ctx: Context, user_id: int, *, role: str, actor: Actor) -> dict[str, Any]:
    """Give the person ``role``; their sessions end (they sign in again with the new
    role). Admins only. Raises ``InvalidInput`` (``role``), ``NotFound``,
    ``Conflict(code="last_admin")`` for the last admin's demotion, ``Forbidden``."""
    actor.require_admin()
    _check_role(role)
    now = ctx.now()
    with ctx.tx() as conn:
        admins = store.admin_ids(conn, lock=True)
        user = _get(conn, user_id, lock=True)
        if user["role"] != role:
            if user["role"] == "admin" and admins == [user_id]:
                raise _only_admin(user["email"], "become a manager")
            store.set_role(conn, user_id, role)
            sessions.end_all(conn, user_id=user_id, now=now)
            audit.record(conn, actor, "user.role", user["email"],
                         {"user_id": user_id, "from": user["role"], "to": role}, at=now)
        return _public(user | {"role": role})


def remove_user(ctx: Context, user_id: int, *, actor: Actor) -> None:
    """Remove the person: they cannot sign in any more and their sessions end at
    once. Admins only. Raises ``NotFound``, ``Conflict(code="last_admin")``, ``Forbidden``."""
    actor.require_admin()
    now = ctx.now()
    with ctx.tx() as conn:
        admins = store.admin_ids(conn, lock=True)
        user = _get(conn, user_id, lock=True)
        if admins == [user_id]:
            raise _only_admin(user["email"], "be removed")
        sessions.end_all(conn, user_id=user_id, now=now)
        store.delete_user(conn, user_id)
        audit.record(conn, actor, "user.remove", user["email"],
                     {"user_id": user_id, "role": user["role"]}, at=now)


# -- password resets ----------------------------------------------------------------------


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def reset_password(ctx: Context, *, actor: Actor, user_id: int | None = None,
                   email: str | None = None, mail: bool = True) -> dict[str, Any]:
    """Reset the password of the person ``user_id`` (or with ``email``): their
    password stops working, their sessions end, and a one-time link to choose a
    new one is made, valid :data:`RESET_VALID`. With ``mail`` and a mail server
    in ``TIDINGS_SMTP_URL`` the link is mailed to them; otherwise it is returned.

    Returns ``{"user_id", "email", "expires_at", "mailed": bool, "link": str | None,
    "mail_problem": str | None}`` (``link`` only when not mailed; ``mail_problem``
    when mailing was tried and failed, the link then being returned). Admins
    only; ``NotFound`` for nobody."""
    actor.require_admin()
    token = secrets.token_urlsafe(32)
    now = ctx.now()
    expires = now + RESET_VALID
    with ctx.tx() as conn:
        if user_id is None:
            found = store.find_user(conn, (email or "").strip().lower())
            if found is None:
                raise NotFound(f"There is no person with the email {email}.", code="user_not_found")
            user_id = int(found["id"])
        user = _get(conn, user_id, lock=True)
        store.add_reset(conn, user_id=user_id, token_hash=_token_hash(token), now=now, expires_at=expires)
        store.set_password_hash(conn, user_id, _NO_PASSWORD)
        store.clear_failures(conn, user["email"])
        sessions.end_all(conn, user_id=user_id, now=now)
        audit.record(conn, actor, "user.password_reset", user["email"], {"user_id": user_id}, at=now)
    link = f"{ctx.settings.public_url}/reset/{token}"
    result: dict[str, Any] = {"user_id": user_id, "email": user["email"],
                              "expires_at": expires.isoformat(), "mailed": False, "link": link,
                              "mail_problem": None}
    if mail and not ctx.settings.smtp_url.startswith("file://"):
        problem = _mail_link(ctx, user["email"], link)
        if problem is None:
            result |= {"mailed": True, "link": None}
        else:
            result["mail_problem"] = problem
    return result


def _mail_link(ctx: Context, email: str, link: str) -> str | None:
    """Mail the reset link; ``None``, or what went wrong."""
    sender = ctx.settings.default_from_email
    factory = MessageFactory(from_email=sender, from_name="Tidings", reply_to=None,
                             mailing_id="password-reset")
    text = (f"Someone with admin rights reset your Tidings password.\n\n"
            f"Choose a new one here (the link works once, for {int(RESET_VALID.total_seconds() // 3600)} "
            f"hours):\n\n{link}\n\nUntil then you cannot sign in.\n")
    data = factory.build(message_id_header=f"<tidings.reset.{secrets.token_hex(8)}@"
                                           f"{sender.rpartition('@')[2]}>",
                         to=email, subject="Choose a new password for Tidings", html=None, text=text,
                         list_unsubscribe=None)
    transport = make_transport(ctx.settings.smtp_url, connections=1, timeout=ctx.settings.smtp_timeout)
    try:
        (outcome,) = transport.send([Envelope(message_id=0, mail_from=sender, rcpt=email, data=data)])
    finally:
        transport.close()
    if outcome.result is Result.SENT:
        return None
    return " ".join(str(p) for p in (outcome.code, outcome.detail) if p) or outcome.result.value


def _invalid_link() -> NotFound:
    return NotFound("This link to choose a password does not work any more (it was used, replaced "
                    "by a newer one, or is over a day old): ask an admin for a new one.",
                    code="reset_link_invalid")


def reset_link_email(ctx: Context, token: str) -> str:
    """The email of the person a valid reset link is for; ``NotFound`` otherwise."""
    with ctx.read() as conn:
        found = store.find_reset(conn, _token_hash(token))
    if found is None or found["used_at"] is not None or found["expires_at"] <= ctx.now():
        raise _invalid_link()
    return str(found["email"])


def choose_password(ctx: Context, token: str, *, password: str) -> str:
    """Set the password through a reset link, which then stops working; the
    person's sessions end and their address is unlocked. Returns their email.
    Raises ``InvalidInput`` (``password``) and ``NotFound(code="reset_link_invalid")``."""
    _check_password(password)
    reset_link_email(ctx, token)  # a bad link is refused before the cost of a hash
    password_hash = _hash(password)
    now = ctx.now()
    with ctx.tx() as conn:
        found = store.find_reset(conn, _token_hash(token), lock=True)
        if found is None or found["expires_at"] <= now or not store.use_reset(conn, found["id"], now):
            raise _invalid_link()
        user = _get(conn, found["user_id"])
        store.set_password_hash(conn, user["id"], password_hash)
        store.clear_failures(conn, user["email"])
        sessions.end_all(conn, user_id=user["id"], now=now)
        audit.record(conn, Actor(name=user["email"], role=user["role"], user_id=user["id"]),
                     "user.password_set", user["email"], {"user_id": user["id"]}, at=now)
    return str(user["email"])
