"""Every error leaves as ``{"error": {"code", "message"}}`` (plus ``field``/``line`` when known)."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from tidings.errors import InvalidInput, RateLimited, TemplateSyntaxError, TidingsError

_HTTP_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
               422: "invalid_input", 429: "rate_limited"}


def envelope(status: int, code: str, message: str, *, retry_after: float | None = None,
             **extra: Any) -> JSONResponse:
    error = {"code": code, "message": message}
    error.update({k: v for k, v in extra.items() if v is not None})
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else {}
    if retry_after is not None:
        headers["Retry-After"] = str(max(1, math.ceil(retry_after)))
    return JSONResponse({"error": error}, status_code=status, headers=headers or None)


def _loc(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path")]
    out = ""
    for p in parts:
        out += f"[{p}]" if p.isdigit() else (f".{p}" if out else p)
    return out


def install(app: FastAPI) -> None:
    @app.exception_handler(TidingsError)
    async def _tidings(_: Request, exc: TidingsError) -> JSONResponse:
        extra: dict[str, Any] = {}
        if isinstance(exc, InvalidInput):
            extra["field"] = exc.field
        if isinstance(exc, TemplateSyntaxError):
            extra["line"] = exc.line
        if isinstance(exc, RateLimited):
            extra["retry_after"] = exc.retry_after
        return envelope(exc.status, exc.code, exc.message, **extra)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {"loc": (), "msg": "invalid request"}
        field = _loc(tuple(first.get("loc", ())))
        if first.get("type") == "json_invalid":
            return envelope(400, "invalid_json", "The request body is not valid JSON.")
        msg = str(first.get("msg", "invalid value"))
        return envelope(422, "invalid_input", f"{field}: {msg}" if field else msg, field=field or None)

    @app.exception_handler(HTTPException)
    async def _http(_: Request, exc: HTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        message = exc.detail if isinstance(exc.detail, str) else code.replace("_", " ")
        if exc.status_code == 404 and message == "Not Found":
            message = "There is nothing at this address."
        if exc.status_code == 405:
            message = "This method is not allowed here."
        return envelope(exc.status_code, code, message)
