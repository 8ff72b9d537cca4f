"""Customers: the list (filters, totals, pages), one customer (edit, subscriptions,
delete, erase), adding one, exports, and the CSV import with its mapping step
and progress."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.datastructures import UploadFile

from tidings.domain import columns
from tidings.errors import InvalidInput, NotFound, TidingsError
from tidings.services import customers, imports, segments
from tidings.services.context import Context
from tidings.web import customer_form
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.wording import say

PAGE_SIZE = 50
DELIMITERS = {"": "Detect", ",": "Comma ,", ";": "Semicolon ;", "tab": "Tab"}
STATUSES = [("", "Any"), ("subscribed", "Subscribed"), ("unsubscribed", "Unsubscribed"),
            ("bounced", "Bounced"), ("complained", "Complained")]
CHANNEL_WORDS = {"email": "email", "sms": "SMS"}
#: The choices of the import's mapping step, as the page words them.
TARGETS = [("email", "Email address"), ("phone", "Phone number"), ("first_name", "First name"),
           ("last_name", "Last name"), ("external_id", "External id (customer number)"),
           ("email_consent", "Consent to emails (yes/no)"),
           ("sms_consent", "Consent to text messages (yes/no)"),
           ("email_status", "Email status (subscribed, unsubscribed…)"),
           ("sms_status", "SMS status (subscribed, unsubscribed…)"),
           ("attribute", "An attribute"), (columns.IGNORE, "Ignore this column")]


def _int(value: str) -> int | None:
    return int(value) if value.strip().isdigit() else None


def _import_form(request: Request, *, errors: dict[str, str], status: int = 200) -> Response:
    return render(request, "customers_import.html", status_code=status, errors=errors,
                  delimiters=DELIMITERS, delimiter="")


def _mapping_page(request: Request, job: dict[str, Any], *, choices: dict[str, str] | None = None,
                  error: str | None = None, status: int = 200) -> Response:
    targets = choices or dict(zip(job["header"], job["targets"], strict=False))
    return render(request, "customers_mapping.html", status_code=status, job=job,
                  targets=[targets.get(h, columns.IGNORE) for h in job["header"]],
                  choices=TARGETS, error=error, attribute=columns.ATTRIBUTE)


def add_routes(r: APIRouter, ctx: Context) -> None:
    # -- the list --------------------------------------------------------------------------

    @r.get("/customers")
    def customers_page(request: Request, actor: Who, q: str = "", email_status: str = "",
                       sms_status: str = "", segment: str = "", before: str = "",
                       after: str = "") -> Response:
        filters = {"q": q.strip(), "email_status": email_status, "sms_status": sms_status,
                   "segment": segment}
        all_segments = segments.list_segments(ctx)
        try:
            page = customers.list_customers(
                ctx, query=filters["q"] or None, email_status=email_status or None,
                sms_status=sms_status or None, segment_id=_int(segment),
                before=_int(before), after=_int(after), limit=PAGE_SIZE)
            error = None
        except (InvalidInput, NotFound) as exc:
            page = {"customers": [], "total": 0, "next_before": None, "prev_after": None}
            error = say(exc)
        filtered = any(filters.values())
        return render(request, "customers.html", page=page, filters=filters, filtered=filtered,
                      statuses=STATUSES, segments=all_segments, error=error,
                      query={k: v for k, v in filters.items() if v})

    @r.get("/customers/export.csv")
    def export(request: Request, actor: Who, segment: str = "") -> Response:
        segment_id = _int(segment)
        name = f"customers-segment-{segment_id}.csv" if segment_id else "customers.csv"
        return StreamingResponse(customers.export_csv(ctx, segment_id=segment_id),
                                 media_type="text/csv; charset=utf-8",
                                 headers={"Content-Disposition": f'attachment; filename="{name}"'})

    # -- adding one ------------------------------------------------------------------------

    @r.get("/customers/new")
    def new_page(request: Request, actor: Who) -> Response:
        return render(request, "customer_edit.html", customer=None, values={}, errors={},
                      rows=customer_form.rows_of({}), labels=customer_form.LABELS)

    @r.post("/customers/new")
    def create(request: Request, actor: Who, form: Form) -> Response:
        try:
            created = customers.create_customer(ctx, customer_form.patch_of(form, None),
                                                actor=actor)
        except TidingsError as exc:
            return render(request, "customer_edit.html", status_code=exc.status, customer=None,
                          values=customer_form.values_of(form), errors=field_errors(exc),
                          rows=customer_form.submitted_rows(form), labels=customer_form.LABELS)
        flash(request, "Customer added.")
        return redirect(f"/customers/{created['id']}")

    # -- the import ------------------------------------------------------------------------

    @r.get("/customers/import")
    def import_page(request: Request, actor: Who) -> Response:
        return _import_form(request, errors={})

    @r.post("/customers/import")
    def upload(request: Request, actor: Who, form: Form) -> Response:
        upload, delimiter = form.get("file"), str(form.get("delimiter", ""))
        data = upload.file.read() if isinstance(upload, UploadFile) else b""
        if not data.strip():
            return _import_form(request, status=422, errors={
                "file": "Choose a CSV file with a header row and at least one customer."})
        try:
            separator = {"tab": "\t"}.get(delimiter, delimiter) or None
            name = upload.filename if isinstance(upload, UploadFile) else None
            job = imports.preview(ctx, data, filename=name, delimiter=separator, actor=actor)
        except TidingsError as exc:
            return _import_form(request, status=exc.status,
                                errors={"file": next(iter(field_errors(exc).values()))})
        return redirect(f"/customers/import/{job['id']}")

    @r.get("/customers/import/{import_id}")
    def import_job(request: Request, actor: Who, import_id: int) -> Response:
        job = imports.status(ctx, import_id)
        if job["status"] == "previewed":
            return _mapping_page(request, job)
        return render(request, "customers_import_job.html", job=job)

    @r.post("/customers/import/{import_id}")
    def start_import(request: Request, actor: Who, import_id: int, form: Form) -> Response:
        job = imports.status(ctx, import_id)
        if job["status"] != "previewed":
            return redirect(f"/customers/import/{import_id}")
        choices: dict[str, str] = {}
        for index, header in enumerate(job["header"]):
            target = str(form.get(f"target-{index}", columns.IGNORE))
            if target == "attribute":
                name = str(form.get(f"name-{index}", "")).strip() or header
                target = columns.ATTRIBUTE + name
            choices[header] = target
        try:
            imports.start(ctx, import_id, choices, actor=actor)
        except InvalidInput as exc:
            return _mapping_page(request, job, choices=choices, error=say(exc), status=422)
        return redirect(f"/customers/import/{import_id}")

    @r.get("/customers/import/{import_id}/progress")
    def import_progress(request: Request, actor: Who, import_id: int) -> Response:
        # The fragment polls again only while the import runs (see _import_progress.html).
        return render(request, "_import_progress.html", fragment=True,
                      job=imports.status(ctx, import_id))

    # -- one customer ----------------------------------------------------------------------

    def customer_page(request: Request, customer_id: int, *, confirm: str = "") -> Response:
        return render(request, "customer.html", customer=customers.get_customer(ctx, customer_id),
                      confirm=confirm, channels=CHANNEL_WORDS)

    @r.get("/customers/{customer_id}")
    def customer(request: Request, actor: Who, customer_id: int,
                 confirm: Annotated[str, Query()] = "") -> Response:
        return customer_page(request, customer_id, confirm=confirm)

    @r.get("/customers/{customer_id}/edit")
    def edit_page(request: Request, actor: Who, customer_id: int) -> Response:
        current = customers.get_customer(ctx, customer_id)
        return render(request, "customer_edit.html", customer=current, errors={},
                      values={f: current[f] or "" for f in customer_form.FIELDS},
                      rows=customer_form.rows_of(current["attributes"]),
                      labels=customer_form.LABELS)

    @r.post("/customers/{customer_id}/edit")
    def edit(request: Request, actor: Who, customer_id: int, form: Form) -> Response:
        current = customers.get_customer(ctx, customer_id)
        try:
            customers.update_customer(ctx, customer_id, customer_form.patch_of(form, current),
                                      actor=actor)
        except TidingsError as exc:
            return render(request, "customer_edit.html", status_code=exc.status,
                          customer=current, values=customer_form.values_of(form),
                          errors=field_errors(exc), rows=customer_form.submitted_rows(form),
                          labels=customer_form.LABELS)
        flash(request, "Changes saved.")
        return redirect(f"/customers/{customer_id}")

    @r.post("/customers/{customer_id}/subscription")
    def subscription(request: Request, actor: Who, customer_id: int, form: Form) -> Response:
        channel, subscribe = str(form.get("channel", "")), form.get("action") == "subscribe"
        customers.set_subscription(ctx, customer_id, channel, subscribe, actor=actor)
        words = CHANNEL_WORDS.get(channel, channel)
        flash(request, f"Subscribed to {words} again." if subscribe
              else f"Unsubscribed from {words}: no {words} mailing will reach this customer.")
        return redirect(f"/customers/{customer_id}")

    @r.post("/customers/{customer_id}/delete")
    def delete(request: Request, actor: Who, customer_id: int) -> Response:
        customers.delete_customer(ctx, customer_id, actor=actor)
        flash(request, "Customer deleted.")
        return redirect("/customers")

    @r.post("/customers/{customer_id}/erase")
    def erase(request: Request, actor: Who, customer_id: int) -> Response:
        done = customers.erase_customer(ctx, customer_id, actor=actor)
        kept = " and ".join(CHANNEL_WORDS[c] for c in done["suppressed"])
        flash(request, "Customer erased: their personal data is gone; the statistics keep "
                       "their messages without it." + (f" Their {kept} stays blocked (kept as a "
                       "code that cannot be read back), as they had asked not to get it."
                       if kept else ""))
        return redirect("/customers")
