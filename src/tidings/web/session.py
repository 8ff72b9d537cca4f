"""The browser session: a signed cookie holding who is signed in and the CSRF token.

The cookie is ``base64url(json) "." hex(HMAC-SHA256)``, keyed by a key derived
from the context's secret, so it cannot be forged or altered. Its name
(:func:`cookie_name`) is derived from that secret too: browsers keep cookies
per host, not per port, so two instances on one host must not share a name. It carries no
password and expires :data:`MAX_AGE` seconds after sign-in. Every visitor,
signed in or not, gets a session with a random CSRF token; every POST must
echo that token in the ``csrf_token`` form field or the ``X-CSRF-Token``
header (htmx sends the header).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import Any

from tidings.domain.actors import Actor

MAX_AGE = 12 * 3600
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"


@dataclass(frozen=True, kw_only=True)
class Session:
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    email: str | None = None
    role: str | None = None
    signed_in_at: float | None = None
    flash: tuple[tuple[str, str], ...] = ()

    @property
    def actor(self) -> Actor | None:
        if self.email is None or self.role is None:
            return None
        return Actor(name=self.email, role=self.role)

    def signed_in(self, *, email: str, role: str) -> Session:
        """A fresh session (new CSRF token) for the person who just signed in."""
        return Session(email=email, role=role, signed_in_at=time.time(), flash=self.flash)

    def with_flash(self, kind: str, message: str) -> Session:
        return replace(self, flash=(*self.flash, (kind, message)))

    def without_flash(self) -> Session:
        return replace(self, flash=())

    def csrf_ok(self, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf.encode(), str(token).encode())


def cookie_name(secret: bytes) -> str:
    """``tidings_session_`` and 12 hex digits of a keyed hash of ``secret``: the
    same for every process of one instance, different for another instance on
    the same host (cookies ignore the port), and revealing nothing of the secret."""
    digest = hmac.new(secret, b"tidings-web-cookie-name-v1", hashlib.sha256).hexdigest()
    return f"tidings_session_{digest[:12]}"


def _key(secret: bytes) -> bytes:
    return hmac.new(secret, b"tidings-web-session-v1", hashlib.sha256).digest()


def dump(session: Session, secret: bytes) -> str:
    payload: dict[str, Any] = {"c": session.csrf}
    if session.email is not None:
        payload |= {"e": session.email, "r": session.role, "t": session.signed_in_at}
    if session.flash:
        payload["f"] = [list(item) for item in session.flash]
    raw = json.dumps(payload, separators=(",", ":")).encode()
    body = base64.urlsafe_b64encode(raw).decode().rstrip("=")  # no "=": no cookie quoting
    mac = hmac.new(_key(secret), body.encode(), hashlib.sha256).hexdigest()
    return f"{body}.{mac}"


def load(cookie: str | None, secret: bytes, *, now: float | None = None) -> Session | None:
    """The session in ``cookie``, or ``None`` if it is missing, forged or expired."""
    if not cookie or "." not in cookie:
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
    flash = tuple((str(k), str(m)) for k, m in payload.get("f", []))
    signed_at = payload.get("t")
    now = time.time() if now is None else now
    if payload.get("e") is None or not isinstance(signed_at, int | float) \
            or now - signed_at > MAX_AGE:
        return Session(csrf=payload["c"], flash=flash)
    return Session(csrf=payload["c"], email=payload["e"], role=payload["r"],
                   signed_in_at=signed_at, flash=flash)
