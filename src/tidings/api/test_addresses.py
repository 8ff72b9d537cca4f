"""``/api/v1/test-addresses``: where test messages may go besides the addresses
of the people who sign in (see :mod:`tidings.services.test_addresses`).

- ``GET /test-addresses``: any role; ``{"test_addresses": [{"id", "address",
  "added_by", "created_at"}]}``.
- ``POST /test-addresses`` ``{"address"}`` (201), ``DELETE /test-addresses/{id}``
  (204): admins only.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response

from tidings.api.dependencies import Admin, Ctx, Id, JsonBody, api_router
from tidings.services import test_addresses

router = api_router()


@router.get("/test-addresses", tags=["test addresses"])
def list_addresses(ctx: Ctx) -> dict[str, Any]:
    return {"test_addresses": test_addresses.list_addresses(ctx)}


@router.post("/test-addresses", status_code=201, tags=["test addresses"])
def add_address(ctx: Ctx, actor: Admin, body: JsonBody) -> dict[str, Any]:
    """``{"address"}``; 409 ``test_address_exists`` if it is on the list already."""
    return test_addresses.add_address(ctx, body.get("address"), actor=actor)


@router.delete("/test-addresses/{entry_id}", status_code=204, tags=["test addresses"])
def remove_address(ctx: Ctx, actor: Admin, entry_id: Id) -> Response:
    test_addresses.remove_address(ctx, entry_id, actor=actor)
    return Response(status_code=204)
