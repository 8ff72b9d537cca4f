"""``/api/v1/orders``: the shop's orders, credited to the mailing that won
them. Bearer token, any role.

- ``POST /orders`` (201): one order; a repeated ``external_id`` is a 409.
- ``POST /orders/import``: a CSV upload; per-line errors, good lines kept.
- ``GET /orders/{order_id}``: one order and the mailing it was credited to.
"""

from __future__ import annotations

from typing import Any

from tidings.api.dependencies import CsvBody, Ctx, Id, JsonBody, api_router
from tidings.services import orders

router = api_router()


@router.post("/orders", status_code=201, tags=["orders"])
def post_order(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """``{"external_id", "customer_id" | "customer_email", "total", "created_at",
    "utm"?}``; returns the order with the ``mailing_id`` it was credited to
    (or null). A repeated ``external_id`` is a 409 ``duplicate_order``."""
    return orders.create_order(ctx, body)


@router.post("/orders/import", tags=["orders"])
def import_orders(ctx: Ctx, data: CsvBody) -> dict[str, Any]:
    """CSV body with a header row (``external_id``, ``customer_id`` or
    ``customer_email``, ``total``, ``created_at``, ``utm_*``); per-line
    errors, good lines kept: ``{"created", "attributed", "errors"}``."""
    return orders.import_orders(ctx, data)


@router.get("/orders/{order_id}", tags=["orders"])
def get_order(ctx: Ctx, order_id: Id) -> dict[str, Any]:
    return orders.get_order(ctx, order_id)
