"""What every response says about its own safety, and who a request comes from.

- :class:`SecurityHeaders`: an ASGI middleware that gives every response
  (pages, API, tracking, static files) a Content-Security-Policy without
  inline script (:data:`CSP`: scripts only from this origin, no ``eval``; no
  framing by anyone), ``X-Content-Type-Options: nosniff``, a referrer policy,
  and ``Strict-Transport-Security`` when the request came over https. A
  response that sets one of these itself keeps its own (the tracking pages'
  stricter policy).
- :func:`is_https`: the request came over TLS: its own scheme is https, or
  ``TIDINGS_TRUST_PROXY`` is set and the proxy's ``X-Forwarded-Proto`` says
  https, or ``TIDINGS_PUBLIC_URL`` is https (people reach Tidings only that
  way). Session cookies are then ``Secure``.
- :func:`client_address`: the address rate limits count by: the peer's, or
  with ``TIDINGS_TRUST_PROXY`` the last one the proxy appended to
  ``X-Forwarded-For``; an IPv6 address stands for its /64 network, the block
  one subscriber gets.
"""

from __future__ import annotations

import ipaddress

from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.config import Settings

#: Scripts from this origin only: no inline script, no event handler attributes, no eval.
#: Styles may be inline (e-mail previews are HTML with inline styles, in a sandboxed
#: frame that inherits this policy); images may come from anywhere (e-mails show the
#: shop's images), which runs nothing.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
       "img-src * data:; font-src 'self'; connect-src 'self'; frame-src 'self'; "
       "object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
HEADERS = {
    "content-security-policy": CSP,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
}
#: A year; subdomains are left alone (the shop's other sites may not all be https).
HSTS = "max-age=31536000"


def _last(value: str | None) -> str | None:
    """The last entry of a comma-separated header: the one our own proxy added."""
    if not value:
        return None
    parts = [p.strip() for p in value.split(",") if p.strip()]
    return parts[-1] if parts else None


def is_https(scope: Scope, settings: Settings) -> bool:
    if scope.get("scheme") == "https" or settings.public_url_is_https:
        return True
    if settings.trust_proxy:
        return (_last(Headers(scope=scope).get("x-forwarded-proto")) or "").lower() == "https"
    return False


def client_address(scope: Scope, settings: Settings) -> str:
    client = scope.get("client")
    address = client[0] if client else "unknown"
    if settings.trust_proxy:
        address = _last(Headers(scope=scope).get("x-forwarded-for")) or address
    try:
        ip = ipaddress.ip_address(address.strip("[]"))
    except ValueError:
        return address
    if ip.version == 6 and not ip.ipv4_mapped:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip.ipv4_mapped or ip) if ip.version == 6 else str(ip)


class SecurityHeaders:
    """Adds :data:`HEADERS` (and HSTS over https) to every HTTP response that lacks them."""

    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        extra = dict(HEADERS)
        if is_https(scope, self.settings):
            extra["strict-transport-security"] = HSTS

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {name.lower() for name, _ in headers}
                headers += [(k.encode(), v.encode()) for k, v in extra.items()
                            if k.encode() not in present]
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)
