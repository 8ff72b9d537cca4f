"""How much a request may bring: body size per kind of route, and no NUL in its address.

:class:`RequestLimitMiddleware` answers before the application reads anything:

- a body larger than its limit is a 413 ``too_large`` (the envelope under
  ``/api/``, an HTML page elsewhere): at once when ``Content-Length`` says so,
  else as soon as the streamed body passes the limit, so no more than the
  limit is ever held in memory. The rest of the body is read and dropped
  before the answer (up to :data:`DRAIN_BYTES` and :data:`DRAIN_SECONDS`):
  closing on a client still sending resets the connection, and the client
  would lose the 413 it was sent;
- a path or query string with a NUL character (``%00``) is a 422
  ``invalid_input`` naming ``path`` or ``query``: no database stores it.

The limits (bytes; :class:`~tidings.config.Settings`): CSV uploads (the API's
``.../import`` routes and the web UI's import form)
``TIDINGS_MAX_CSV_BYTES``; the customer batch ``POST /api/v1/customers``
``TIDINGS_MAX_BATCH_BYTES``; other web forms ``TIDINGS_MAX_FORM_BYTES``; any
other body ``TIDINGS_MAX_JSON_BYTES``.
"""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.api.dependencies import API_PREFIX
from tidings.api.errors import error_response
from tidings.config import Settings
from tidings.errors import TidingsError

#: How much of a refused body is read and dropped so the client sees the answer.
DRAIN_BYTES = 512 * 1024 * 1024
#: How long a refused body is read for, at most.
DRAIN_SECONDS = 30.0


async def drain(receive: Receive) -> None:
    """Read and drop the rest of a request body, within the drain limits."""
    dropped = 0
    try:
        async with asyncio.timeout(DRAIN_SECONDS):
            while dropped <= DRAIN_BYTES:
                message = await receive()
                if message["type"] != "http.request":
                    return
                dropped += len(message.get("body", b""))
                if not message.get("more_body", False):
                    return
    except TimeoutError:
        return


class BodyTooLarge(TidingsError):
    """The request body is too large."""

    status = 413
    code = "too_large"


def body_limit(settings: Settings, method: str, path: str, content_type: str) -> tuple[int, str]:
    """The largest body a request may have, and what the limit is called."""
    if path.endswith("/import"):
        return settings.max_csv_bytes, "a CSV file"
    if method == "POST" and path == f"{API_PREFIX}/customers":
        return settings.max_batch_bytes, "a batch of customers"
    if not path.startswith(API_PREFIX + "/") and content_type.startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        return settings.max_form_bytes, "a form"
    return settings.max_json_bytes, "a request body"


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):g} MiB" if size >= 1024 * 1024 else f"{size // 1024} KiB"


def too_large(limit: int, what: str) -> BodyTooLarge:
    return BodyTooLarge(f"The request is too large: {what} may have at most {_mib(limit)} "
                        f"({limit:,} bytes).")


class RequestLimitMiddleware:
    def __init__(self, app: ASGIApp, *, settings: Settings) -> None:
        self.app = app
        self.settings = settings

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        if "\x00" in path or b"%00" in scope.get("raw_path", b"").lower():
            await self._refuse(scope, receive, send, 422, "invalid_input",
                               "The address contains a NUL character (%00).", field="path")
            return
        if b"%00" in scope.get("query_string", b"").lower():
            await self._refuse(scope, receive, send, 422, "invalid_input",
                               "The query string contains a NUL character (%00).", field="query")
            return
        headers = dict(scope["headers"])
        content_type = headers.get(b"content-type", b"").decode("latin-1").lower()
        limit, what = body_limit(self.settings, scope["method"], path, content_type)
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await drain(receive)
            await self._refuse(scope, receive, send, 413, "too_large", too_large(limit, what).message)
            return
        seen = 0

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await drain(receive)
                    raise too_large(limit, what)
            return message

        await self.app(scope, counted, send)

    @staticmethod
    async def _refuse(scope: Scope, receive: Receive, send: Send, status: int, code: str,
                      message: str, field: str | None = None) -> None:
        response = error_response(scope["path"], status, code, message, field=field,
                                  headers={"Connection": "close"} if status == 413 else None)
        await response(scope, receive, send)
