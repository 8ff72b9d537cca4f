"""``/api/v1/segments``: saved rule trees over customers. Bearer token, any role.

- ``POST /segments`` (201), ``GET /segments``, ``GET /segments/{segment_id}``,
  ``PATCH /segments/{segment_id}`` (rename, new rules).
- ``POST /segments/{segment_id}/copy`` (201): a copy named "Copy of NAME".
- ``DELETE /segments/{segment_id}`` (204; 409 ``segment_in_use`` while a
  scheduled or sending mailing uses it).
- ``GET /segments/{segment_id}/count``: how many customers match now.
- ``POST /segments/count``: count a rule tree ``{"rules": ...}`` without saving it.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from tidings.api.dependencies import Ctx, Id, JsonBody, Who, api_router
from tidings.services import segments

router = api_router()


@router.post("/segments", status_code=201, tags=["segments"])
def post_segment(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    return segments.create_segment(ctx, body)


@router.get("/segments", tags=["segments"])
def list_segments(ctx: Ctx) -> dict[str, Any]:
    return {"segments": segments.list_segments(ctx)}


@router.get("/segments/{segment_id}", tags=["segments"])
def get_segment(ctx: Ctx, segment_id: Id) -> dict[str, Any]:
    return segments.get_segment(ctx, segment_id)


@router.patch("/segments/{segment_id}", tags=["segments"])
def patch_segment(ctx: Ctx, segment_id: Id, body: JsonBody) -> dict[str, Any]:
    return segments.update_segment(ctx, segment_id, body)


@router.post("/segments/{segment_id}/copy", status_code=201, tags=["segments"])
def copy_segment(ctx: Ctx, segment_id: Id) -> dict[str, Any]:
    return segments.copy_segment(ctx, segment_id)


@router.delete("/segments/{segment_id}", status_code=204, tags=["segments"])
def delete_segment(ctx: Ctx, actor: Who, segment_id: Id) -> Response:
    segments.delete_segment(ctx, segment_id, actor=actor)
    return Response(status_code=204)


@router.get("/segments/{segment_id}/count", tags=["segments"])
def count_segment(ctx: Ctx, segment_id: Id) -> dict[str, int]:
    return segments.count_segment(ctx, segment_id)


@router.post("/segments/count", tags=["segments"])
def count_rules(ctx: Ctx, body: JsonBody) -> dict[str, int]:
    """Count a rule tree without saving it: ``{"rules": ...}``."""
    return segments.count_rules(ctx, body.get("rules", {}))
