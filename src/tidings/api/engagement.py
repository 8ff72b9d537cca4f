"""``/api/v1`` routes for conversion and statistics: orders, their CSV import,
mailing statistics and the test send. Bearer token required, like the rest."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from tidings.api.app import Ctx, JsonBody, _actor
from tidings.errors import InvalidInput
from tidings.services import orders, stats, test_sends


def build_engagement_router() -> APIRouter:
    r = APIRouter(prefix="/api/v1", dependencies=[Depends(_actor)])

    @r.post("/orders", status_code=201, tags=["orders"])
    def post_order(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
        """``{"external_id", "customer_id" | "customer_email", "total", "created_at",
        "utm"?}``; returns the order with the ``mailing_id`` it was credited to
        (or null). A repeated ``external_id`` is a 409 ``duplicate_order``."""
        return orders.create_order(ctx, body)

    @r.post("/orders/import", tags=["orders"])
    async def import_orders(request: Request, ctx: Ctx) -> dict[str, Any]:
        """CSV body with a header row (``external_id``, ``customer_id`` or
        ``customer_email``, ``total``, ``created_at``, ``utm_*``); per-line
        errors, good lines kept: ``{"created", "attributed", "errors"}``."""
        data = await request.body()
        if not data.strip():
            raise InvalidInput("The CSV body is empty.", field="body")
        return orders.import_orders(ctx, data)

    @r.get("/orders/{order_id}", tags=["orders"])
    def get_order(ctx: Ctx, order_id: int) -> dict[str, Any]:
        return orders.get_order(ctx, order_id)

    @r.get("/mailings/{mailing_id}/stats", tags=["mailings"])
    def mailing_stats(ctx: Ctx, mailing_id: int) -> dict[str, Any]:
        """The contract's figures, the rates, and per-step and whole-chain totals."""
        return stats.mailing_stats(ctx, mailing_id)

    @r.post("/mailings/{mailing_id}/test", tags=["mailings"])
    def test_send(ctx: Ctx, mailing_id: int, body: JsonBody) -> dict[str, Any]:
        """``{"email"}``: one rendered message of the mailing to that address, through
        the configured transport; not counted, no quota, no message row."""
        return test_sends.send_test(ctx, mailing_id, body)

    return r


__all__ = ["build_engagement_router"]
