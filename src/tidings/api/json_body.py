"""Read a JSON body as JSON whatever ``Content-Type`` it was declared with,
and refuse what no field of Tidings can hold before a route sees it.

``curl -d '{...}'`` declares ``application/x-www-form-urlencoded``; FastAPI
would then refuse the body as "not a valid dictionary". This ASGI middleware
reads the body of each ``POST``/``PUT``/``PATCH`` under ``/api/v1`` (CSV
uploads, ``.../import``, and multipart bodies excepted):

- a body declared as something else that parses as JSON is passed on as
  ``application/json``; any other non-empty body gets 415 saying to send JSON;
- a body declared as JSON that does not parse is a 400 ``invalid_json``;
- a JSON body is refused with 422 ``invalid_input`` naming the field (its
  path, like ``customers[3].first_name``) when it holds a string with a NUL
  character or a lone surrogate (``"\\ud800"``), an integer outside the signed
  64-bit range, a number too large for a double (``1e999``), or is nested more
  than :data:`MAX_DEPTH` levels deep. Nothing else about the body is judged
  here: the routes and services name the field that is wrong for them.

The body is read whole; :mod:`tidings.api.limits` has bounded its size before.
"""

from __future__ import annotations

import json
import math
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.api.dependencies import API_PREFIX
from tidings.api.errors import envelope

METHODS = frozenset({"POST", "PUT", "PATCH"})
#: Deepest nesting of arrays and objects a JSON body may have (a segment's rules
#: nest at most 20 levels, which is about 42 here).
MAX_DEPTH = 64
INT64 = (-(2**63), 2**63 - 1)


def _raw_body_path(path: str) -> bool:
    """Routes that read the body themselves (CSV)."""
    return path.endswith("/import")


class _Huge:
    """An integer literal too long to be a 64-bit integer (kept as its digits)."""

    def __init__(self, digits: str) -> None:
        self.digits = digits


def _parse_int(digits: str) -> int | _Huge:
    # Python refuses to parse more than 4,300 digits (a ValueError, not a JSON
    # error); any literal of more than 20 characters is beyond 64 bits anyway.
    return _Huge(digits) if len(digits) > 20 else int(digits)


def parse_json(body: bytes) -> Any:
    """The JSON value of ``body``; raises ``ValueError`` if it is not JSON, and
    ``RecursionError`` if it nests too deep for the parser."""
    return json.loads(body, parse_int=_parse_int)


def _path(parent: str, key: str | int) -> str:
    if isinstance(key, int):
        return f"{parent}[{key}]"
    return f"{parent}.{key}" if parent else key


def _bad_string(text: str) -> str | None:
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate (\\ud800-\\udfff without its pair), which is not text"
    return None


def find_unstorable(value: Any) -> tuple[str, str] | None:
    """``(path, problem)`` of the first value no field can hold, or None."""
    todo: list[tuple[str, Any, int]] = [("", value, 0)]
    while todo:
        path, item, depth = todo.pop()
        if depth > MAX_DEPTH:
            return path or "body", f"nests more than {MAX_DEPTH} levels deep"
        if isinstance(item, str):
            problem = _bad_string(item)
            if problem:
                return path or "body", problem
        elif isinstance(item, _Huge) or (isinstance(item, int) and not isinstance(item, bool)
                                         and not INT64[0] <= item <= INT64[1]):
            return path or "body", "is an integer outside the 64-bit range (-2^63 to 2^63-1)"
        elif isinstance(item, float) and not math.isfinite(item):
            return path or "body", "is a number too large to hold"
        elif isinstance(item, dict):
            for key, sub in reversed(list(item.items())):
                problem = _bad_string(key)
                if problem:
                    return _path(path, "(a key)"), problem
                todo.append((_path(path, key), sub, depth + 1))
        elif isinstance(item, list):
            todo.extend((_path(path, i), sub, depth + 1) for i, sub in reversed(list(enumerate(item))))
    return None


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
        if media.startswith("multipart/"):
            await self.app(scope, receive, send)
            return
        declared_json = media == "application/json" or media.endswith("+json")
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
            refusal = self._refusal(body, declared_json=declared_json)
            if refusal is not None:
                await refusal(scope, receive, send)
                return
            if not declared_json:
                headers = [(k, v) for k, v in headers if k != b"content-type"]
                headers.append((b"content-type", b"application/json"))
                scope = {**scope, "headers": headers}

        replay = iter(messages)

        async def receive_again() -> Message:
            message: Any = next(replay, None)
            return message if message is not None else await receive()

        await self.app(scope, receive_again, send)

    @staticmethod
    def _refusal(body: bytes, *, declared_json: bool) -> Any:
        try:
            value = parse_json(body)
        except RecursionError:
            return envelope(422, "invalid_input",
                            f"The request body nests more than {MAX_DEPTH} levels deep.", field="body")
        except ValueError:
            if declared_json:
                return envelope(400, "invalid_json", "The request body is not valid JSON.")
            return envelope(
                415, "unsupported_media_type",
                "The request body is not JSON. Send a JSON body, with the header "
                "Content-Type: application/json.")
        found = find_unstorable(value)
        if found is None:
            return None
        path, problem = found
        return envelope(422, "invalid_input", f"{path}: the value {problem}.", field=path)
