"""``/api/v1/templates``: message templates. Bearer token, any role.

- ``POST /templates`` (201), ``GET /templates``, ``GET /templates/{template_id}``,
  ``PATCH /templates/{template_id}``. Besides the contract's fields a
  template has ``editor`` (``"html"`` or ``"blocks"``), ``blocks`` (the
  builder's document; ``html`` is then made from it), ``preheader``, and, in
  the answer about one template, ``warnings`` (``[{"code", "variable",
  "message"}]``: unknown variables, no unsubscribe link).
- ``POST /templates/{template_id}/preview``: rendered for ``customer_id``, or
  for the sample customer without one.
- ``GET /templates/variables``: the customer's fields and the attribute keys
  customers have, with the Jinja for each.
- ``GET /templates/starters``: the builder's starter layouts, as blocks.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from tidings.api.dependencies import Ctx, Id, JsonBody, api_router
from tidings.services import templates as template_service

router = api_router()


class PreviewBody(BaseModel):
    customer_id: Id | None = None


@router.post("/templates", status_code=201, tags=["templates"])
def post_template(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    return template_service.create_template(ctx, body)


@router.get("/templates", tags=["templates"])
def list_templates(ctx: Ctx) -> dict[str, Any]:
    return {"templates": template_service.list_templates(ctx)}


@router.get("/templates/variables", tags=["templates"])
def variables(ctx: Ctx) -> dict[str, Any]:
    return template_service.variables(ctx)


@router.get("/templates/starters", tags=["templates"])
def starters() -> dict[str, Any]:
    return {"starters": template_service.starters()}


@router.get("/templates/{template_id}", tags=["templates"])
def get_template(ctx: Ctx, template_id: Id) -> dict[str, Any]:
    return template_service.get_template(ctx, template_id)


@router.patch("/templates/{template_id}", tags=["templates"])
def patch_template(ctx: Ctx, template_id: Id, body: JsonBody) -> dict[str, Any]:
    return template_service.update_template(ctx, template_id, body)


@router.post("/templates/{template_id}/preview", tags=["templates"])
def preview(ctx: Ctx, template_id: Id, body: PreviewBody) -> dict[str, Any]:
    return template_service.preview(ctx, template_id, body.customer_id)
