"""The web UI for managers: server-rendered pages with htmx, served at ``/``.

``build_web_router(ctx)`` returns the router to include in the FastAPI app::

    app.include_router(build_web_router(ctx))

Pages call the same service layer as the API; people sign in with email and
password (a signed session cookie), and every POST carries a CSRF token.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException
from fastapi.responses import FileResponse

from tidings.services.context import Context
from tidings.web.routing import route_class
from tidings.web.views import (
    auth,
    checklist,
    customers,
    domains,
    mailings,
    people,
    quota,
    segments,
    settings,
    templates,
)

STATIC = Path(__file__).with_name("static")
MEDIA_TYPES = {".css": "text/css", ".js": "text/javascript", ".svg": "image/svg+xml",
               ".ico": "image/x-icon", ".txt": "text/plain"}


def _static_router() -> APIRouter:
    """The static files, outside the session machinery (no cookie on them), and
    ``/favicon.ico``, which browsers ask for whatever the page links."""
    r = APIRouter(include_in_schema=False)
    files = {p.name: p for p in STATIC.iterdir() if p.suffix in MEDIA_TYPES}

    def send(name: str) -> FileResponse:
        path = files.get(name)
        if path is None:
            raise HTTPException(status_code=404)
        return FileResponse(path, media_type=MEDIA_TYPES[path.suffix],
                            headers={"Cache-Control": "public, max-age=86400"})

    @r.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> FileResponse:
        return send(name)

    @r.get("/favicon.ico", include_in_schema=False)
    def favicon() -> FileResponse:
        return send("favicon.ico")

    return r


def build_web_router(ctx: Context) -> APIRouter:
    """Every page of the UI, bound to ``ctx``; include it at the app's root."""
    r = APIRouter(route_class=route_class(ctx), include_in_schema=False)
    r.include_router(_static_router())
    auth.add_routes(r, ctx)
    people.add_routes(r, ctx)
    customers.add_routes(r, ctx)
    segments.add_routes(r, ctx)
    templates.add_routes(r, ctx)
    mailings.add_routes(r, ctx)
    checklist.add_routes(r, ctx)
    quota.add_routes(r, ctx)
    domains.add_routes(r, ctx)
    settings.add_routes(r, ctx)
    return r


__all__ = ["build_web_router"]
