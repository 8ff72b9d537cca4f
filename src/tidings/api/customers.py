"""``/api/v1/customers``: the shop's customers. Bearer token, any role.

- ``POST /customers`` (201): one customer, or ``{"customers": [...]}`` in bulk.
- ``POST /customers/import``: a CSV upload; per-line errors, good lines kept.
- ``GET /customers``: find by ``email`` or ``q``, paged.
- ``GET /customers/{customer_id}``: one customer.
"""

from __future__ import annotations

from typing import Any

from tidings.api.dependencies import CsvBody, Ctx, Id, JsonBody, Limit, Offset, api_router
from tidings.services import audience

router = api_router()


@router.post("/customers", status_code=201, tags=["customers"])
def post_customers(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """One customer object, or ``{"customers": [...]}`` (up to 10,000, all or nothing)."""
    if set(body) == {"customers"}:
        return {"ids": audience.upsert_customers(ctx, body["customers"])}
    return audience.upsert_customer(ctx, body)


@router.post("/customers/import", tags=["customers"])
def import_customers(ctx: Ctx, data: CsvBody, encoding: str | None = None,
                     delimiter: str | None = None) -> dict[str, Any]:
    """CSV body (``text/csv``) with a header row; per-line errors, good lines kept."""
    return audience.import_csv(ctx, data, encoding=encoding, delimiter=delimiter)


@router.get("/customers", tags=["customers"])
def find_customers(ctx: Ctx, email: str | None = None, q: str | None = None,
                   limit: Limit = 50,
                   offset: Offset = 0) -> Any:
    found = audience.find_customers(ctx, email=email, query=q, limit=limit, offset=offset)
    return {"customers": found}


@router.get("/customers/{customer_id}", tags=["customers"])
def get_customer(ctx: Ctx, customer_id: Id) -> dict[str, Any]:
    return audience.get_customer(ctx, customer_id)
