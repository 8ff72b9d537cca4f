"""Read a JSON body as JSON whatever ``Content-Type`` it was declared with.

``curl -d '{...}'`` declares ``application/x-www-form-urlencoded``; FastAPI
would then refuse the body as "not a valid dictionary". This ASGI middleware
looks at the body of each ``POST``/``PUT``/``PATCH`` under ``/api/v1`` that
does not say ``application/json``: a body that parses as JSON is passed on as
``application/json``; any other non-empty body gets 415 saying to send JSON.
CSV uploads (``.../import``) and empty bodies pass untouched.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.api.dependencies import API_PREFIX
from tidings.api.errors import envelope

METHODS = frozenset({"POST", "PUT", "PATCH"})


def _raw_body_path(path: str) -> bool:
    """Routes that read the body themselves (CSV)."""
    return path.endswith("/import")


class JsonBodyMiddleware:
    def __init__(self, app: ASGIApp, *, prefix: str = API_PREFIX) -> None:
        self.app = app
        self.prefix = prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (scope["type"] != "http" or scope["method"] not in METHODS
                or not scope["path"].startswith(self.prefix) or _raw_body_path(scope["path"])):
            await self.app(scope, receive, send)
            return
        headers: list[tuple[bytes, bytes]] = list(scope["headers"])
        declared = next((v for k, v in headers if k == b"content-type"), b"").decode("latin-1")
        media = declared.split(";", 1)[0].strip().lower()
        if media == "application/json" or media.endswith("+json") or media.startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        body, more = b"", True
        messages: list[Message] = []
        while more:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += message.get("body", b"")
            more = message.get("more_body", False)
        if body.strip():
            try:
                json.loads(body)
            except ValueError:
                response = envelope(
                    415, "unsupported_media_type",
                    "The request body is not JSON. Send a JSON body, with the header "
                    "Content-Type: application/json.")
                await response(scope, receive, send)
                return
            headers = [(k, v) for k, v in headers if k != b"content-type"]
            headers.append((b"content-type", b"application/json"))
            scope = {**scope, "headers": headers}

        replay = iter(messages)

        async def receive_again() -> Message:
            message: Any = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, receive_again, send)
