"""Every error leaves as ``{"error": {"code", "message"}}`` (plus ``field``/``line`` when known).

One place decides how an error looks on the wire:

- :class:`~tidings.errors.TidingsError`: its status, code and message (and
  ``field``/``line`` for invalid input);
- a request FastAPI cannot read: 400 ``invalid_json`` or 422 ``invalid_input``
  naming the field;
- Starlette's own errors (404 for an unknown address, 405 with ``Allow``
  listing the methods the address takes, 413, ...): their status and a
  sentence;
- a value the database refuses as out of range (``DataError``): 422
  ``invalid_input``;
- a database that cannot serve now (unreachable or restarting, locked past
  its busy timeout, disk full; :func:`tidings.store.db.unavailable`): 503
  ``database_unavailable``, ``database_busy`` or ``database_full`` with
  ``Retry-After``; nothing of the request was applied (its transaction rolled
  back);
- anything else, whatever raised it: 500 ``internal_error`` with a reference
  and no internals; the traceback is logged with the same reference
  (:class:`CatchAllMiddleware`). Outside ``/api/`` (the web UI, tracking
  pages) the same errors are a small HTML page instead of JSON.
"""

from __future__ import annotations

import html
import logging
import math
import uuid
from typing import Any

import sqlalchemy as sa
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from starlette.exceptions import HTTPException
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tidings.errors import InvalidInput, RateLimited, StoreUnavailable, TemplateSyntaxError, TidingsError
from tidings.store.db import unavailable

log = logging.getLogger("tidings.api")

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_input", 429: "rate_limited", 500: "internal_error"}


def envelope(status: int, code: str, message: str, *, headers: dict[str, str] | None = None,
             retry_after: float | None = None, **extra: Any) -> JSONResponse:
    """The contract's error envelope; ``retry_after`` (seconds) becomes ``Retry-After``."""
    error = {"code": code, "message": message}
    error.update({k: v for k, v in extra.items() if v is not None})
    all_headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    all_headers.update(headers or {})
    if retry_after is not None:
        all_headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse({"error": error}, status_code=status, headers=all_headers or None)


def is_api(path: str) -> bool:
    """Whether errors at ``path`` are JSON (the API) rather than an HTML page."""
    return path.startswith("/api/") or path == "/openapi.json"


def error_page(status: int, title: str, message: str, *,
               headers: dict[str, str] | None = None) -> HTMLResponse:
    """A self-contained HTML error page, for errors no web route rendered itself."""
    text = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
            f'</title></head><body><h1>{html.escape(title)}</h1><p>{html.escape(message)}</p>'
            '<p><a href="/">Back to Tidings</a></p></body></html>')
    return HTMLResponse(text, status_code=status, headers=headers)


def error_response(request_path: str, status: int, code: str, message: str, *,
                   headers: dict[str, str] | None = None, **extra: Any) -> Response:
    """The envelope for the API, a page elsewhere."""
    if is_api(request_path):
        return envelope(status, code, message, headers=headers, **extra)
    title = {404: "Not found", 403: "Not allowed", 500: "Something went wrong",
             503: "Not available right now"}.get(
        status, "Something is wrong")
    return error_page(status, title, message, headers=headers)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


_METHODS = ("DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT")


def allowed_methods(app: ASGIApp, scope: Scope) -> list[str]:
    """Every method some route of ``app`` takes at the path of ``scope`` (asked
    of the routes themselves, so routers included in routers count too)."""
    routes = getattr(getattr(app, "router", None), "routes", [])
    return [method for method in _METHODS
            if any(route.matches({**scope, "method": method, "type": "http"})[0] is Match.FULL
                   for route in routes)]


def log_internal(exc: BaseException, where: str) -> str:
    """Log ``exc`` with its traceback under a new reference; returns the sentence
    a person is shown instead (the reference, no internals)."""
    reference = uuid.uuid4().hex[:12]
    log.error("internal error %s at %s", reference, where, exc_info=exc)
    return (f"Something went wrong on our side. It was logged with the reference {reference}; "
            "please try again, or report that reference.")


def internal_error(path: str, exc: BaseException, where: str) -> Response:
    """Log ``exc``; the 500 ``internal_error`` that tells the reference only."""
    return error_response(path, 500, "internal_error", log_internal(exc, where))


class CatchAllMiddleware:
    """The outermost guard: whatever an inner layer raises becomes the envelope
    (or an HTML page outside the API), never a plain-text 500. An error after
    the response started can only be logged and the connection closed."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except Exception as exc:  # noqa: BLE001 - this is the last line of defence
            if started:
                log.error("error after the response started at %s %s", scope["method"], scope["path"],
                          exc_info=exc)
                raise
            response = known_error(scope["path"], exc) or internal_error(
                scope["path"], exc, f"{scope['method']} {scope['path']}")
            await response(scope, receive, send)


def known_error(path: str, exc: BaseException) -> Response | None:
    """The response for an error we know how to show, or None."""
    if isinstance(exc, TidingsError):
        extra: dict[str, Any] = {}
        if isinstance(exc, InvalidInput):
            extra["field"] = exc.field
        if isinstance(exc, TemplateSyntaxError):
            extra["line"] = exc.line
        headers = dict(getattr(exc, "headers", None) or {})
        if isinstance(exc, RateLimited | StoreUnavailable):
            headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        return error_response(path, exc.status, exc.code, exc.message, headers=headers, **extra)
    if isinstance(exc, sa.exc.DataError):
        return error_response(path, 422, "invalid_input",
                              "A value in the request is out of range or too long to be stored.")
    down = unavailable(exc)
    if down is not None:
        said = getattr(exc, "orig", None) or exc
        log.warning("the database cannot serve %s (%s): %s", path, down.code,
                    (str(said).strip().splitlines() or [""])[0])
        return known_error(path, down)
    return None


def install(app: FastAPI) -> None:
    """The handlers and the catch-all of ``app``."""

    @app.exception_handler(TidingsError)
    async def _tidings(request: Request, exc: TidingsError) -> Response:
        response = known_error(request.url.path, exc)
        assert response is not None
        return response

    @app.exception_handler(sa.exc.DataError)
    async def _data(request: Request, exc: sa.exc.DataError) -> Response:
        log.warning("the database refused a value at %s: %s", request.url.path, exc.orig)
        response = known_error(request.url.path, exc)
        assert response is not None
        return response

    @app.exception_handler(sa.exc.DBAPIError)
    async def _database(request: Request, exc: sa.exc.DBAPIError) -> Response:
        return known_error(request.url.path, exc) or internal_error(
            request.url.path, exc, f"{request.method} {request.url.path}")

    @app.exception_handler(RequestValidationError)
    async def _validation(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _loc(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return envelope(400, "invalid_json", "The request body is not valid JSON.")
        msg = str(first.get("msg", "invalid value"))
        return error_response(request.url.path, 422, "invalid_input",
                              f"{field}: {msg}" if field else msg, field=field or None)

    @app.exception_handler(HTTPException)
    async def _http(request: Request, exc: HTTPException) -> Response:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        headers = dict(exc.headers or {})
        if exc.status_code == 404 and message == "Not Found":
            message = "There is nothing at this address."
        if exc.status_code == 405:
            allowed = allowed_methods(request.app, request.scope)
            headers["Allow"] = ", ".join(allowed) or headers.get("Allow", "")
            message = f"This address takes {', '.join(allowed)}, not {request.method}."
        return error_response(request.url.path, exc.status_code, code, message, headers=headers or None)

    app.add_middleware(CatchAllMiddleware)
