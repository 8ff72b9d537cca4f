"""Rate limits on the endpoints anyone can reach, per client address.

One token bucket (:class:`~tidings.domain.throttling.Buckets`) per limit and
address (:func:`~tidings.web.security.client_address`), kept in this process:

| limit | requests | bucket | over the limit |
|---|---|---|---|
| open pixel | ``GET /t/o/...`` | 600, then 20 a second | the image, but the open is not recorded |
| click | ``GET /t/c/...`` | 300, then 10 a second | 429 page |
| unsubscribe | ``/u/...`` | 60, then 1 a second | 429 page |
| provider events | ``POST /api/v1/events`` | 1,000, then 200 a second | 429 in the error envelope |
| failed sign-ins | ``POST /sign-in`` answered 401 | 20, then 1 every 30 s | 429 page |
| reset links | ``/reset/...`` answered 404 | 20, then 1 every 30 s | 429 page |

A limit on failures is charged only when the answer is that failure, so
people who sign in right are never slowed. The rest of the API needs a valid
token, whose check is one indexed read that never takes SQLite's write lock
(:mod:`tidings.services.tokens`); it is not limited, so that a flood of bad
tokens from one address cannot lock out good clients behind the same one.
A refusal costs no database work and no more bytes than the request
(no amplification), and says when to try again (``Retry-After``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from fastapi.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.api.errors import envelope
from tidings.api.tracking import NO_CACHE, PIXEL, page
from tidings.config import Settings
from tidings.domain.throttling import Buckets, Rate, in_words
from tidings.web.security import client_address


@dataclass(frozen=True, kw_only=True)
class Limit:
    """Requests whose method is in ``methods`` and whose path starts with ``prefix``
    share one bucket per address; with ``failures``, only answers with one of
    those statuses take a token."""

    name: str
    methods: frozenset[str]
    prefix: str
    rate: Rate
    answer: str  # "json", "html" or "pixel"
    failures: frozenset[int] = frozenset()
    #: For a limit on failures: what failed, in words, and the page to go back to.
    failures_are: str = ""
    back_to: str = "/sign-in"
    buckets: Buckets = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "buckets", Buckets(self.rate))

    def applies(self, method: str, path: str) -> bool:
        return method in self.methods and path.startswith(self.prefix)


def default_limits() -> tuple[Limit, ...]:
    """The limits in the module docstring, each with fresh buckets."""
    get = frozenset({"GET", "HEAD"})
    every = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"})
    slow = Rate(capacity=20, per_second=1 / 30)
    return (
        Limit(name="open pixel", methods=get, prefix="/t/o/",
              rate=Rate(capacity=600, per_second=20), answer="pixel"),
        Limit(name="click", methods=get, prefix="/t/c/", rate=Rate(capacity=300, per_second=10),
              answer="html"),
        Limit(name="unsubscribe", methods=frozenset({"GET", "POST"}), prefix="/u/",
              rate=Rate(capacity=60, per_second=1), answer="html"),
        Limit(name="provider events", methods=frozenset({"POST"}), prefix="/api/v1/events",
              rate=Rate(capacity=1000, per_second=200), answer="json"),
        Limit(name="failed sign-ins", methods=frozenset({"POST"}), prefix="/sign-in", rate=slow,
              answer="html", failures=frozenset({401}), failures_are="sign-ins"),
        Limit(name="reset links", methods=every, prefix="/reset/", rate=slow, answer="html",
              failures=frozenset({404}), failures_are="password links"),
    )


def _wait_words(seconds: int) -> str:
    if seconds >= 60:
        return in_words(seconds)
    return f"{seconds} second{'s' if seconds != 1 else ''}"


def _refusal(limit: Limit, wait: float) -> Response:
    seconds = max(1, math.ceil(wait))
    if limit.answer == "pixel":
        return Response(PIXEL, media_type="image/gif", headers=NO_CACHE)
    if limit.answer == "json":
        return envelope(429, "rate_limited", f"Too many requests from your address: try again in "
                                             f"{_wait_words(seconds)}.", retry_after=seconds)
    words = _wait_words(seconds)
    if limit.failures:
        body = (f"<p>Too many failed {limit.failures_are} from your network: try again in {words}."
                f'</p>\n<p><a href="{limit.back_to}">Back to sign-in</a></p>')
    else:
        body = f"<p>Too many requests from your network: try again in {words}.</p>"
    response = page("Too many attempts" if limit.failures else "Too many requests", body,
                    status_code=429)
    response.headers["Retry-After"] = str(seconds)
    return response


class RateLimits:
    """An ASGI middleware applying ``limits`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, *, settings: Settings, limits: tuple[Limit, ...]) -> None:
        self.app = app
        self.settings = settings
        self.limits = limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        matching = [limit for limit in self.limits if limit.applies(method, path)]
        if not matching:
            await self.app(scope, receive, send)
            return
        key = client_address(scope, self.settings)
        for limit in matching:
            wait = limit.buckets.wait(key) if limit.failures else limit.buckets.take(key)
            if wait > 0:
                await _refusal(limit, wait)(scope, receive, send)
                return
        charged = [limit for limit in matching if limit.failures]
        if not charged:
            await self.app(scope, receive, send)
            return

        async def send_and_charge(message: Message) -> None:
            if message["type"] == "http.response.start":
                for limit in charged:
                    if message["status"] in limit.failures:
                        limit.buckets.spend(key)
            await send(message)

        await self.app(scope, receive, send_and_charge)
