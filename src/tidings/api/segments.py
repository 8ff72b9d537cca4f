"""``/api/v1/segments``: saved rule trees over customers. Bearer token, any role.

- ``POST /segments`` (201), ``GET /segments``, ``GET /segments/{segment_id}``,
  ``PATCH /segments/{segment_id}``.
- ``GET /segments/{segment_id}/count``: how many customers match now.
- ``POST /segments/count``: count a rule tree ``{"rules": ...}`` without saving it.
"""

from __future__ import annotations

from typing import Any

from tidings.api.dependencies import Ctx, Id, JsonBody, api_router
from tidings.services import audience

router = api_router()


@router.post("/segments", status_code=201, tags=["segments"])
def post_segment(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    return audience.create_segment(ctx, body)


@router.get("/segments", tags=["segments"])
def list_segments(ctx: Ctx) -> dict[str, Any]:
    return {"segments": audience.list_segments(ctx)}


@router.get("/segments/{segment_id}", tags=["segments"])
def get_segment(ctx: Ctx, segment_id: Id) -> dict[str, Any]:
    return audience.get_segment(ctx, segment_id)


@router.patch("/segments/{segment_id}", tags=["segments"])
def patch_segment(ctx: Ctx, segment_id: Id, body: JsonBody) -> dict[str, Any]:
    return audience.update_segment(ctx, segment_id, body)


@router.get("/segments/{segment_id}/count", tags=["segments"])
def count_segment(ctx: Ctx, segment_id: Id) -> dict[str, int]:
    return audience.count_segment(ctx, segment_id)


@router.post("/segments/count", tags=["segments"])
def count_rules(ctx: Ctx, body: JsonBody) -> dict[str, int]:
    """Count a rule tree without saving it: ``{"rules": ...}``."""
    return audience.count_rules(ctx, body.get("rules", {}))
