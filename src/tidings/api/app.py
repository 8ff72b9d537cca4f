"""The FastAPI application: the ``/api/v1`` routers, the tracking pages, the
web UI, ``/openapi.json`` and ``/healthz``; and, for the life of the app, the
bounce listener and (when ``tidings serve`` runs one) the sending worker.

There is no ``/docs`` or ``/redoc``: FastAPI serves them with scripts from a
public CDN and an inline script, which the pages' Content-Security-Policy
refuses, on the UI's origin. The OpenAPI document at ``/openapi.json``
describes every route, its bodies and its errors; load it into any OpenAPI
viewer.

Around every request, outermost first: security headers
(:mod:`tidings.web.security`), the catch-all that keeps every error in the
envelope (:mod:`tidings.api.errors`), the body and address limits
(:mod:`tidings.api.limits`), rate limits on the public endpoints
(:mod:`tidings.api.rate_limits`, kept in ``app.state.rate_limits``), and the
JSON body reader (:mod:`tidings.api.json_body`). Outside them all,
:class:`CountRequests` counts the requests being answered, for the sending
worker in the same process to give way to them."""

from __future__ import annotations

import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from tidings import __version__
from tidings.api import (
    audit,
    customers,
    domains,
    errors,
    events,
    mailings,
    media,
    openapi,
    orders,
    quota,
    segments,
    templates,
    test_addresses,
    tracking,
    users,
)
from tidings.api.json_body import JsonBodyMiddleware
from tidings.api.limits import RequestLimitMiddleware
from tidings.api.rate_limits import RateLimits, default_limits
from tidings.services import feedback
from tidings.services.context import Context
from tidings.services.sending import WORKER_SWITCH_INTERVAL, Foreground, make_worker
from tidings.web import build_web_router
from tidings.web.security import SecurityHeaders

#: Every ``/api/v1`` router, in the order the OpenAPI document lists them.
API_ROUTERS: tuple[APIRouter, ...] = (
    customers.router, segments.router, templates.router, quota.router, mailings.router,
    orders.router, domains.router, events.router, media.router, users.router,
    test_addresses.router, audit.router,
)


def create_app(ctx: Context, *, run_worker: bool = False) -> FastAPI:
    """The application; with ``run_worker`` a sending worker (and scheduler) runs
    in a background thread for the life of the app, and with ``TIDINGS_BOUNCE_LISTEN``
    the inbound listener for bounces and complaints (``app.state.bounce_listener``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        worker = None
        thread = None
        switch = sys.getswitchinterval()
        app.state.bounce_listener = listener = feedback.start_listener(ctx)
        if run_worker:
            # The worker's render thread keeps the GIL busy, and a request gives it up at
            # every database round trip: a short switch interval hands it back sooner,
            # and the worker gives way while requests are answered.
            sys.setswitchinterval(WORKER_SWITCH_INTERVAL)
            app.state.worker = worker = make_worker(ctx, foreground=foreground)
            thread = threading.Thread(target=worker.run, name="tidings-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker is not None and thread is not None:
                worker.stop_event.set()
                thread.join(timeout=30)
                sys.setswitchinterval(switch)
            if listener is not None:
                listener.stop()

    app = FastAPI(title="Tidings", version=__version__, lifespan=lifespan,
                  description="Email and SMS mailings to a shop's customers.",
                  docs_url=None, redoc_url=None)
    app.state.ctx = ctx
    app.state.foreground = foreground = Foreground()
    app.add_middleware(JsonBodyMiddleware)
    app.state.rate_limits = default_limits() if ctx.settings.rate_limits else ()
    app.add_middleware(RateLimits, settings=ctx.settings, limits=app.state.rate_limits)
    app.add_middleware(RequestLimitMiddleware, settings=ctx.settings)
    errors.install(app)  # its catch-all wraps everything but the headers
    app.add_middleware(SecurityHeaders, settings=ctx.settings)  # every answer has them
    app.add_middleware(CountRequests, foreground=foreground)  # outermost
    for router in API_ROUTERS:
        app.include_router(router)
    app.include_router(build_web_router(ctx))
    app.include_router(tracking.router)
    app.include_router(media.public_router)
    app.openapi = lambda: openapi.document(app)  # type: ignore[method-assign]

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


class CountRequests:
    """Counts the requests of people at work (the API and the web UI) being
    answered, for the worker in this process to give way to them
    (:class:`~tidings.engine.foreground.Foreground`). Recipients' requests (the
    tracking pixel and links, unsubscribe pages, images) are not counted: a
    mailing that many open at once must not slow its own sending."""

    #: Recipients' pages and files, then the UI's static files and the health probe.
    NOT_COUNTED = ("/t/", "/u/", "/media/", "/shop/", "/static/", "/healthz")

    def __init__(self, app: ASGIApp, foreground: Foreground) -> None:
        self.app = app
        self.foreground = foreground

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(self.NOT_COUNTED):
            await self.app(scope, receive, send)
            return
        self.foreground.enter()
        try:
            await self.app(scope, receive, send)
        finally:
            self.foreground.leave()


__all__ = ["CountRequests", "create_app"]
