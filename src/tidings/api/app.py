"""The FastAPI application: ``/api/v1`` routes, ``/openapi.json``, and the
background worker when ``tidings serve`` runs one."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, FastAPI, Query, Request, Response
from pydantic import AwareDatetime, BaseModel

from tidings import __version__
from tidings.api import errors
from tidings.api.json_body import JsonBodyMiddleware
from tidings.domain.actors import Actor
from tidings.errors import InvalidInput
from tidings.services import audience, mailings, quotas, tokens
from tidings.services import templates as template_service
from tidings.services.context import Context

log = logging.getLogger("tidings.api")
JsonBody = Annotated[dict[str, Any], Body()]


def _ctx(request: Request) -> Context:
    return request.app.state.ctx


def _actor(request: Request) -> Actor:
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    return tokens.authenticate(_ctx(request), token.strip() if scheme.lower() == "bearer" else None)


Ctx = Annotated[Context, Depends(_ctx)]
Who = Annotated[Actor, Depends(_actor)]


class ScheduleBody(BaseModel):
    #: Required for a first step; a later chain step goes at its chain time without it.
    send_at: AwareDatetime | None = None


class TopupBody(BaseModel):
    channel: str
    amount: int


class PreviewBody(BaseModel):
    customer_id: int | None = None


def build_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", dependencies=[Depends(_actor)])

    # -- customers
    @r.post("/customers", status_code=201, tags=["customers"])
    def post_customers(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        """One customer object, or ``{"customers": [...]}`` (up to 10,000, all or nothing)."""
        if set(body) == {"customers"}:
            return {"ids": audience.upsert_customers(ctx, body["customers"])}
        return audience.upsert_customer(ctx, body)

    @r.post("/customers/import", tags=["customers"])
    async def import_customers(request: Request, ctx: Ctx, encoding: str | None = None,
                               delimiter: str | None = None) -> dict[str, Any]:
        """CSV body (``text/csv``) with a header row; per-line errors, good lines kept."""
        data = await request.body()
        if not data.strip():
            raise InvalidInput("The CSV body is empty.", field="body")
        return audience.import_csv(ctx, data, encoding=encoding, delimiter=delimiter)

    @r.get("/customers", tags=["customers"])
    def find_customers(ctx: Ctx, email: str | None = None, q: str | None = None,
                       limit: Annotated[int, Query(ge=1, le=500)] = 50,
                       offset: Annotated[int, Query(ge=0)] = 0) -> Any:
        found = audience.find_customers(ctx, email=email, query=q, limit=limit, offset=offset)
        return {"customers": found}

    @r.get("/customers/{customer_id}", tags=["customers"])
    def get_customer(ctx: Ctx, customer_id: int) -> dict[str, Any]:
        return audience.get_customer(ctx, customer_id)

    # -- segments
    @r.post("/segments", status_code=201, tags=["segments"])
    def post_segment(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        return audience.create_segment(ctx, body)

    @r.get("/segments", tags=["segments"])
    def list_segments(ctx: Ctx) -> dict[str, Any]:
        return {"segments": audience.list_segments(ctx)}

    @r.get("/segments/{segment_id}", tags=["segments"])
    def get_segment(ctx: Ctx, segment_id: int) -> dict[str, Any]:
        return audience.get_segment(ctx, segment_id)

    @r.patch("/segments/{segment_id}", tags=["segments"])
    def patch_segment(ctx: Ctx, segment_id: int, body: JsonBody) -> dict[str, Any]:
        return audience.update_segment(ctx, segment_id, body)

    @r.get("/segments/{segment_id}/count", tags=["segments"])
    def count_segment(ctx: Ctx, segment_id: int) -> dict[str, int]:
        return audience.count_segment(ctx, segment_id)

    @r.post("/segments/count", tags=["segments"])
    def count_rules(ctx: Ctx, body: JsonBody) -> dict[str, int]:
        """Count a rule tree without saving it: ``{"rules": ...}``."""
        return audience.count_rules(ctx, body.get("rules", {}))

    # -- templates
    @r.post("/templates", status_code=201, tags=["templates"])
    def post_template(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        return template_service.create_template(ctx, body)

    @r.get("/templates", tags=["templates"])
    def list_templates(ctx: Ctx) -> dict[str, Any]:
        return {"templates": template_service.list_templates(ctx)}

    @r.get("/templates/{template_id}", tags=["templates"])
    def get_template(ctx: Ctx, template_id: int) -> dict[str, Any]:
        return template_service.get_template(ctx, template_id)

    @r.patch("/templates/{template_id}", tags=["templates"])
    def patch_template(ctx: Ctx, template_id: int, body: JsonBody) -> dict[str, Any]:
        return template_service.update_template(ctx, template_id, body)

    @r.post("/templates/{template_id}/preview", tags=["templates"])
    def preview(ctx: Ctx, template_id: int, body: PreviewBody) -> dict[str, Any]:
        return template_service.preview(ctx, template_id, body.customer_id)

    # -- quota
    @r.get("/quota", tags=["quota"])
    def get_quota(ctx: Ctx) -> dict[str, Any]:
        return quotas.get_quota(ctx)

    @r.post("/quota/topup", tags=["quota"])
    def topup(ctx: Ctx, actor: Who, body: TopupBody) -> dict[str, Any]:
        return quotas.topup(ctx, channel=body.channel, amount=body.amount, actor=actor)

    # -- mailings
    @r.post("/mailings", status_code=201, tags=["mailings"])
    def post_mailing(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        return mailings.create(ctx, body)

    @r.get("/mailings", tags=["mailings"])
    def list_mailings(ctx: Ctx, status: str | None = None,
                      limit: Annotated[int, Query(ge=1, le=500)] = 50,
                      offset: Annotated[int, Query(ge=0)] = 0) -> dict[str, Any]:
        return {"mailings": mailings.list_(ctx, limit=limit, offset=offset, status=status)}

    @r.get("/mailings/{mailing_id}", tags=["mailings"])
    def get_mailing(ctx: Ctx, mailing_id: int) -> dict[str, Any]:
        return mailings.get(ctx, mailing_id)

    @r.patch("/mailings/{mailing_id}", tags=["mailings"])
    def patch_mailing(ctx: Ctx, mailing_id: int, body: JsonBody) -> dict[str, Any]:
        return mailings.update(ctx, mailing_id, body)

    @r.delete("/mailings/{mailing_id}", status_code=204, tags=["mailings"])
    def delete_mailing(ctx: Ctx, mailing_id: int) -> Response:
        mailings.delete(ctx, mailing_id)
        return Response(status_code=204)

    @r.post("/mailings/{mailing_id}/send", tags=["mailings"])
    def send(ctx: Ctx, mailing_id: int) -> dict[str, Any]:
        return mailings.send_now(ctx, mailing_id)

    @r.post("/mailings/{mailing_id}/schedule", tags=["mailings"])
    def schedule(ctx: Ctx, mailing_id: int, body: ScheduleBody | None = None) -> dict[str, Any]:
        return mailings.schedule(ctx, mailing_id, body.send_at if body else None)

    @r.post("/mailings/{mailing_id}/cancel", tags=["mailings"])
    def cancel(ctx: Ctx, mailing_id: int) -> dict[str, Any]:
        return mailings.cancel(ctx, mailing_id)

    @r.post("/mailings/{mailing_id}/resume", tags=["mailings"])
    def resume(ctx: Ctx, actor: Who, mailing_id: int) -> dict[str, Any]:
        return mailings.resume(ctx, mailing_id, actor=actor)

    @r.post("/mailings/{mailing_id}/copy", status_code=201, tags=["mailings"])
    def copy(ctx: Ctx, mailing_id: int) -> dict[str, Any]:
        return mailings.copy(ctx, mailing_id)

    @r.post("/mailings/{mailing_id}/steps", status_code=201, tags=["mailings"])
    def add_step(ctx: Ctx, mailing_id: int, body: JsonBody) -> dict[str, Any]:
        return mailings.add_step(ctx, mailing_id, body)

    return r


def create_app(ctx: Context, *, run_worker: bool = False) -> FastAPI:
    """The application; with ``run_worker`` a sending worker (and scheduler) runs
    in a background thread for the life of the app, and with ``TIDINGS_BOUNCE_LISTEN``
    the inbound listener for bounces and complaints (``app.state.bounce_listener``)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from tidings.services import feedback

        worker = None
        thread = None
        app.state.bounce_listener = listener = feedback.start_listener(ctx)
        if run_worker:
            from tidings.services.sending import make_worker

            worker = make_worker(ctx)
            thread = threading.Thread(target=worker.run, name="tidings-worker", daemon=True)
            thread.start()
        try:
            yield
        finally:
            if worker is not None and thread is not None:
                worker.stop_event.set()
                thread.join(timeout=30)
            if listener is not None:
                listener.stop()

    app = FastAPI(title="Tidings", version=__version__, lifespan=lifespan,
                  description="Email and SMS mailings to a shop's customers.")
    app.state.ctx = ctx
    errors.install(app)
    app.add_middleware(JsonBodyMiddleware)
    app.include_router(build_router())
    from tidings.web import build_web_router

    app.include_router(build_web_router(ctx))
    from tidings.api.engagement import build_engagement_router
    from tidings.api.public import build_public_router

    app.include_router(build_engagement_router())
    app.include_router(build_public_router())
    from tidings.api.deliverability import build_deliverability_router

    app.include_router(build_deliverability_router())

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app


__all__ = ["create_app"]
