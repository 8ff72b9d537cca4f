"""Customers: search and page through, one customer, CSV import with its report."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from tidings.errors import TidingsError
from tidings.services import audience
from tidings.services.context import Context
from tidings.web.routing import Form, Who, field_errors, render

PAGE_SIZE = 50
DELIMITERS = {"": "Detect", ",": "Comma ,", ";": "Semicolon ;", "tab": "Tab"}


def add_routes(r: APIRouter, ctx: Context) -> None:
    @r.get("/customers")
    def customers_page(request: Request, actor: Who, q: str = "",
                       page: Annotated[int, Query(ge=1)] = 1) -> Response:
        query = q.strip()
        found = audience.find_customers(ctx, query=query or None, limit=PAGE_SIZE + 1,
                                        offset=(page - 1) * PAGE_SIZE)
        return render(request, "customers.html", customers=found[:PAGE_SIZE], q=query, page=page,
                      has_next=len(found) > PAGE_SIZE, page_size=PAGE_SIZE)

    @r.get("/customers/import")
    def import_page(request: Request, actor: Who) -> Response:
        return render(request, "customers_import.html", report=None, errors={},
                      delimiters=DELIMITERS, delimiter="")

    @r.post("/customers/import")
    def import_file(request: Request, actor: Who, form: Form) -> Response:
        upload, delimiter = form.get("file"), str(form.get("delimiter", ""))
        data = upload.file.read() if isinstance(upload, UploadFile) else b""
        page: dict[str, Any] = {"delimiters": DELIMITERS, "delimiter": delimiter}
        if not data.strip():
            return render(request, "customers_import.html", status_code=422, report=None, **page,
                          errors={"file": "Choose a CSV file with a header row and at least one "
                                          "customer."})
        try:
            separator = {"tab": "\t"}.get(delimiter, delimiter) or None
            report = audience.import_csv(ctx, data, delimiter=separator)
        except TidingsError as exc:
            errors = field_errors(exc)
            return render(request, "customers_import.html", status_code=exc.status, report=None,
                          **page, errors={"file": next(iter(errors.values()))})
        name = upload.filename if isinstance(upload, UploadFile) else None
        return render(request, "customers_import.html", report=report, errors={}, filename=name,
                      **page)

    @r.get("/customers/{customer_id}")
    def customer_page(request: Request, actor: Who, customer_id: int) -> Response:
        return render(request, "customer.html", customer=audience.get_customer(ctx, customer_id))
