"""``/api/v1`` routes for deliverability: sending domains, their health, and the
feedback webhook ``POST /events``. Bearer token required, like the rest."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response

from tidings.api.app import Ctx, JsonBody, _actor
from tidings.services import domains, feedback


def build_deliverability_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", dependencies=[Depends(_actor)])

    @r.post("/domains", status_code=201, tags=["domains"])
    def post_domain(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        """``{"domain", "selector"?}``: generates a DKIM key and returns the SPF, DKIM and
        DMARC records to publish. 409 ``domain_exists`` if it was added before."""
        return domains.create(ctx, body)

    @r.get("/domains", tags=["domains"])
    def list_domains(ctx: Ctx) -> dict[str, Any]:
        return {"domains": domains.list_(ctx)}

    @r.get("/domains/{domain_id}", tags=["domains"])
    def get_domain(ctx: Ctx, domain_id: int) -> dict[str, Any]:
        return domains.get(ctx, domain_id)

    @r.delete("/domains/{domain_id}", status_code=204, tags=["domains"])
    def delete_domain(ctx: Ctx, domain_id: int) -> Response:
        """Forget the domain and its DKIM key; adding it again makes a new key."""
        domains.delete(ctx, domain_id)
        return Response(status_code=204)

    @r.post("/domains/{domain_id}/verify", tags=["domains"])
    def verify_domain(ctx: Ctx, domain_id: int) -> dict[str, Any]:
        """Check the records over DNS; the domain with ``checks`` saying what is missing or wrong."""
        return domains.verify(ctx, domain_id)

    @r.get("/domains/{domain_id}/health", tags=["domains"])
    def domain_health(
        ctx: Ctx, domain_id: int, days: Annotated[int, Query(ge=1, le=365)] = domains.HEALTH_DAYS
    ) -> dict[str, Any]:
        """Recent bounce and complaint rates, DNS status, one-click unsubscribe, DMARC alignment."""
        return domains.health(ctx, domain_id, days=days)

    @r.post("/events", tags=["events"])
    def post_event(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        """Provider webhooks: ``{"type": "delivered|bounce|complaint", "message_id", "hard"?}``;
        the same effect as a bounce or complaint by mail, applied once per message."""
        return feedback.apply_event(ctx, body)

    return r
