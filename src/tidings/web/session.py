"""The browser session cookie: signed, holding the CSRF token, the flash
messages, and the token of a server-side session when someone signed in.

The cookie is ``base64url(json) "." hex(HMAC-SHA256)``, keyed by a key derived
from the context's secret, so it cannot be forged or altered. Its name
(:func:`cookie_name`) is derived from that secret too: browsers keep cookies
per host, not per port, so two instances on one host must not share a name.
It carries no password and says nothing of who is signed in: that is the
server-side session its token names (:mod:`tidings.services.sessions`), looked
up on every request, so that sign-out, removing a person, a new role or a
password reset end it at once, wherever the cookie was copied to.

Every visitor, signed in or not, gets a session with a random CSRF token; every
POST must echo that token in the ``csrf_token`` form field or the
``X-CSRF-Token`` header (htmx sends the header). The cookie is HttpOnly,
SameSite=Lax, and Secure when served over https (see :mod:`tidings.web.routing`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
from dataclasses import dataclass, field, replace
from typing import Any

from tidings.domain.actors import Actor

CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, kw_only=True)
class Session:
    """What one browser carries (``csrf``, ``token``, ``flash``) and, when its
    token names a valid server-side session, who that is (``email``, ``role``,
    ``user_id``: looked up on each request, never stored in the cookie)."""

    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    token: str | None = None
    flash: tuple[tuple[str, str], ...] = ()
    email: str | None = None
    role: str | None = None
    user_id: int | None = None

    @property
    def actor(self) -> Actor | None:
        if self.email is None or self.role is None:
            return None
        return Actor(name=self.email, role=self.role, user_id=self.user_id)

    def signed_in(self, *, token: str, email: str, role: str, user_id: int) -> Session:
        """A fresh session (new CSRF token) for the person who just signed in."""
        return Session(token=token, email=email, role=role, user_id=user_id, flash=self.flash)

    def as_person(self, *, email: str, role: str, user_id: int) -> Session:
        """This session, its token found valid for that person."""
        return replace(self, email=email, role=role, user_id=user_id)

    def signed_out(self) -> Session:
        """This visitor without a server-side session (same CSRF token and messages)."""
        return Session(csrf=self.csrf, flash=self.flash)

    def with_flash(self, kind: str, message: str) -> Session:
        return replace(self, flash=(*self.flash, (kind, message)))

    def without_flash(self) -> Session:
        return replace(self, flash=())

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())

    def stored(self) -> tuple[str, str | None, tuple[tuple[str, str], ...]]:
        """What the cookie holds: two sessions with the same need the same cookie."""
        return (self.csrf, self.token, self.flash)


def cookie_name(secret: bytes) -> str:
    """``tidings_session_`` and 12 hex digits of a keyed hash of ``secret``: the
    same for every process of one instance, different for another instance on
    the same host (cookies ignore the port), and revealing nothing of the secret."""
    digest = hmac.new(secret, b"tidings-web-cookie-name-v1", hashlib.sha256).hexdigest()
    return f"tidings_session_{digest[:12]}"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"tidings-web-session-v2", hashlib.sha256).digest()


def dump(session: Session, secret: bytes) -> str:
    payload: dict[str, Any] = {"c": session.csrf}
    if session.token is not None:
        payload["s"] = session.token
    if session.flash:
        payload["f"] = [list(item) for item in session.flash]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # no "=": no cookie quoting
    mac = hmac.new(_key(secret), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def load(cookie: str | None, secret: bytes) -> Session | None:
    """The session in ``cookie`` (nobody signed in yet: its token is still to be
    looked up), or ``None`` if it is missing or forged."""
    if not cookie or "." not in cookie or len(cookie) > 4096:
        return None
    body, _, mac = cookie.rpartition(".")
    expected = hmac.new(_key(secret), body.encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, mac):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(body + "=" * (-len(body) % 4)))
    except (binascii.Error, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("c"), str):
        return None
    token = payload.get("s")
    try:
        flash = tuple((str(k), str(m)) for k, m in payload.get("f", []))
    except (TypeError, ValueError):
        flash = ()
    return Session(csrf=payload["c"], token=token if isinstance(token, str) else None, flash=flash)
