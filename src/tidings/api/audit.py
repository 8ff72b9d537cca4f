"""``/api/v1/audit``: who did what, newest first. Admin token only.

``GET /audit?limit=50&before=ID&action=mailing.send`` ->
``{"entries": [{"id", "at", "actor", "actor_role", "action", "did", "subject",
"detail"}], "next_before": ID | null}``: pass ``next_before`` as ``before`` for
the next (older) page.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query

from tidings.api.dependencies import Admin, Ctx, api_router
from tidings.services import audit

router = api_router()


@router.get("/audit", tags=["audit"])
def audit_log(ctx: Ctx, actor: Admin, limit: Annotated[int, Query(ge=1, le=500)] = 50,
              before: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
              action: Annotated[str | None, Query(max_length=48)] = None) -> dict[str, Any]:
    return audit.entries(ctx, actor=actor, limit=limit, before=before, action=action)
