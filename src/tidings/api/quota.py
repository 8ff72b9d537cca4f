"""``/api/v1/quota``: messages left to send, per channel. Bearer token.

- ``GET /quota``: any role.
- ``POST /quota/topup`` ``{"channel", "amount"}``: admin only (403 for a
  manager, before the body is looked at); recorded in the audit log.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.api.dependencies import Admin, Ctx, api_router
from tidings.services import quotas

router = api_router()


class TopupBody(BaseModel):
    channel: str
    amount: int


@router.get("/quota", tags=["quota"])
def get_quota(ctx: Ctx) -> dict[str, Any]:
    return quotas.get_quota(ctx)


@router.post("/quota/topup", tags=["quota"])
def topup(ctx: Ctx, actor: Admin, body: TopupBody) -> dict[str, Any]:
    return quotas.topup(ctx, channel=body.channel, amount=body.amount, actor=actor)
