"""``/api/v1/customers``: the shop's customers. Bearer token, any role.

- ``POST /customers`` (201): one customer, or ``{"customers": [...]}`` in bulk.
- ``POST /customers/import``: a CSV upload; per-line errors, good lines kept.
  Optional ``map=HEADER=TARGET`` parameters say what a column means (see
  :mod:`tidings.domain.columns`).
- ``GET /customers``: find by ``email``, or a page of the list (newest first)
  filtered by ``q``, ``email_status``, ``sms_status``, ``segment_id``, with
  ``total`` and keyset paging (``before=next_before``).
- ``GET /customers/{customer_id}``: one customer.
- ``PATCH /customers/{customer_id}``: change any field (a JSON merge patch).
- ``DELETE /customers/{customer_id}`` (204): remove the customer.
- ``POST /customers/{customer_id}/erase``: erase their personal data for good.
- ``GET /customers/export.csv``: the customers (of ``segment_id``) as CSV, streamed.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Query, Response
from fastapi.responses import StreamingResponse

from tidings.api.dependencies import MAX_ID, CsvBody, Ctx, Id, JsonBody, Limit, Offset, Who, api_router
from tidings.services import customers, imports

router = api_router()
#: An optional id in the query: a positive 64-bit integer.
OptionalId = Annotated[int | None, Query(ge=1, le=MAX_ID)]


@router.post("/customers", status_code=201, tags=["customers"])
def post_customers(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    """One customer object, or ``{"customers": [...]}`` (up to 10,000, all or nothing)."""
    if set(body) == {"customers"}:
        return {"ids": customers.upsert_customers(ctx, body["customers"])}
    return customers.upsert_customer(ctx, body)


@router.post("/customers/import", tags=["customers"])
def import_customers(ctx: Ctx, data: CsvBody, encoding: str | None = None,
                     delimiter: str | None = None,
                     map: Annotated[list[str] | None, Query()] = None) -> dict[str, Any]:  # noqa: A002
    """CSV body (``text/csv``) with a header row; per-line errors, good lines kept.
    ``map=HEADER=TARGET`` (repeatable) says what a column means: a customer
    field, ``email_consent`` / ``sms_consent`` (yes/no), ``attributes.NAME`` or
    ``ignore``."""
    return imports.import_csv(ctx, data, encoding=encoding, delimiter=delimiter, mapping=map)


@router.get("/customers", tags=["customers"])
def find_customers(ctx: Ctx, email: str | None = None, q: str | None = None,
                   email_status: str | None = None, sms_status: str | None = None,
                   segment_id: OptionalId = None, before: OptionalId = None,
                   limit: Limit = 50, offset: Offset = 0) -> Any:
    """By ``email`` (a list of at most one), or a page of the list: ``{"customers",
    "total", "next_before"}``; ``before=next_before`` gives the next page."""
    if email is not None or offset:
        return {"customers": customers.find_customers(ctx, email=email, query=q, limit=limit,
                                                      offset=offset)}
    page = customers.list_customers(ctx, query=q, email_status=email_status,
                                    sms_status=sms_status, segment_id=segment_id,
                                    before=before, limit=limit)
    return {"customers": page["customers"], "total": page["total"],
            "next_before": page["next_before"]}


@router.get("/customers/export.csv", tags=["customers"], response_class=StreamingResponse)
def export_customers(ctx: Ctx, segment_id: OptionalId = None) -> StreamingResponse:
    """The customers of ``segment_id`` (everyone without it) as CSV, streamed."""
    return csv_download(customers.export_csv(ctx, segment_id=segment_id),
                        f"customers-segment-{segment_id}.csv" if segment_id else "customers.csv")


def csv_download(pieces: Any, filename: str) -> StreamingResponse:
    return StreamingResponse(pieces, media_type="text/csv; charset=utf-8",
                             headers={"Content-Disposition": f'attachment; filename="{filename}"',
                                      "Cache-Control": "no-store"})


@router.get("/customers/{customer_id}", tags=["customers"])
def get_customer(ctx: Ctx, customer_id: Id) -> dict[str, Any]:
    return customers.get_customer(ctx, customer_id)


@router.patch("/customers/{customer_id}", tags=["customers"])
def patch_customer(ctx: Ctx, actor: Who, customer_id: Id, body: JsonBody) -> dict[str, Any]:
    """Change any of the fields; ``null`` clears one, attributes merge (``null`` removes a key)."""
    return customers.update_customer(ctx, customer_id, body, actor=actor)


@router.delete("/customers/{customer_id}", status_code=204, tags=["customers"])
def delete_customer(ctx: Ctx, actor: Who, customer_id: Id) -> Response:
    customers.delete_customer(ctx, customer_id, actor=actor)
    return Response(status_code=204)


@router.post("/customers/{customer_id}/erase", tags=["customers"])
def erase_customer(ctx: Ctx, actor: Who, customer_id: Id) -> dict[str, Any]:
    """Personal data gone for good, statistics kept without it."""
    return customers.erase_customer(ctx, customer_id, actor=actor)
