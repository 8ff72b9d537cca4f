"""``/api/v1/domains``: sending domains, their DNS records and their health.
Bearer token, any role, except that only an admin may delete a domain (and so
its DKIM key).

- ``POST /domains`` (201): add a domain; its DKIM key and the records to publish.
- ``GET /domains``, ``GET /domains/{domain_id}``, ``DELETE /domains/{domain_id}`` (204).
- ``POST /domains/{domain_id}/verify``: check the records over DNS.
- ``GET /domains/{domain_id}/health``: bounce and complaint rates over ``days``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response

from tidings.api.dependencies import Admin, Ctx, Id, JsonBody, api_router
from tidings.services import domains

router = api_router()


@router.post("/domains", status_code=201, tags=["domains"])
def post_domain(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """``{"domain", "selector"?}``: generates a DKIM key and returns the SPF, DKIM and
    DMARC records to publish. 409 ``domain_exists`` if it was added before."""
    return domains.create(ctx, body)


@router.get("/domains", tags=["domains"])
def list_domains(ctx: Ctx) -> dict[str, Any]:
    return {"domains": domains.list_(ctx)}


@router.get("/domains/{domain_id}", tags=["domains"])
def get_domain(ctx: Ctx, domain_id: Id) -> dict[str, Any]:
    return domains.get(ctx, domain_id)


@router.delete("/domains/{domain_id}", status_code=204, tags=["domains"])
def delete_domain(ctx: Ctx, actor: Admin, domain_id: Id) -> Response:
    """Forget the domain and its DKIM key; adding it again makes a new key. Admins only."""
    domains.delete(ctx, domain_id, actor=actor)
    return Response(status_code=204)


@router.post("/domains/{domain_id}/verify", tags=["domains"])
def verify_domain(ctx: Ctx, domain_id: Id) -> dict[str, Any]:
    """Check the records over DNS; the domain with ``checks`` saying what is missing or wrong."""
    return domains.verify(ctx, domain_id)


@router.get("/domains/{domain_id}/health", tags=["domains"])
def domain_health(
    ctx: Ctx, domain_id: Id, days: Annotated[int, Query(ge=1, le=365)] = domains.HEALTH_DAYS
) -> dict[str, Any]:
    """Recent bounce and complaint rates, DNS status, one-click unsubscribe, DMARC alignment."""
    return domains.health(ctx, domain_id, days=days)
