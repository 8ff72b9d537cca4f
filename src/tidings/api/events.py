"""``POST /api/v1/events``: delivery, bounce and complaint reports that a
provider calls back with. Bearer token, any role.

The same effect as a bounce or complaint by mail (see
:mod:`tidings.services.feedback`), applied once per message.
"""

from __future__ import annotations

from typing import Any

from tidings.api.dependencies import Ctx, JsonBody, api_router
from tidings.services import feedback

router = api_router()


@router.post("/events", tags=["events"])
def post_event(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """Provider webhooks: ``{"type": "delivered|bounce|complaint", "message_id", "hard"?}``;
    the same effect as a bounce or complaint by mail, applied once per message."""
    return feedback.apply_event(ctx, body)
