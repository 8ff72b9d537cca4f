"""Templates: the list, the editor with a live preview for a chosen customer, test sends."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import InvalidInput, TidingsError
from tidings.services import audience, shop, test_sends
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render

FIELDS = ("name", "channel", "subject", "html", "text")


def _values(form: Any, template: dict[str, Any] | None) -> dict[str, Any]:
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in FIELDS if k in form}
    values["channel"] = template["channel"] if template else values.get("channel") or "email"
    if values["channel"] == "sms":
        values = {k: v for k, v in values.items() if k not in ("subject", "html")}
    elif not values.get("text", "").strip():
        values["text"] = None  # derived from the HTML
    return values


def _customer_id(ctx: Context, text: str) -> int | None:
    """The customer given by id or email in the "For customer" field; None (the
    sample customer) when it is empty."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    found = audience.find_customers(ctx, email=text)
    if not found:
        raise InvalidInput(f"There is no customer with the email {text}.", field="customer")
    return int(found[0]["id"])


def add_routes(r: APIRouter, ctx: Context) -> None:
    def page(request: Request, *, template: dict[str, Any] | None, values: dict[str, Any],
             errors: dict[str, str], status: int = 200, test_to: str = "") -> Response:
        customers = audience.find_customers(ctx, limit=50)
        return render(request, "template.html", status_code=status, template=template,
                      values=values, errors=errors, customers=customers, test_to=test_to,
                      default_from=shop.default_sender(ctx).email)

    def save(request: Request, form: Any, template: dict[str, Any] | None) -> Response:
        values = _values(form, template)
        try:
            if template is None:
                saved = template_service.create_template(ctx, values)
            else:
                saved = template_service.update_template(ctx, template["id"], values)
        except TidingsError as exc:
            return page(request, template=template, values=values, errors=field_errors(exc),
                        status=exc.status)
        flash(request, f"Template {saved['name']} saved.")
        return redirect(f"/templates/{saved['id']}")

    @r.get("/templates")
    def templates_page(request: Request, actor: Who) -> Response:
        return render(request, "templates.html", templates=template_service.list_templates(ctx))

    @r.get("/templates/new")
    def new_template(request: Request, actor: Who, channel: str = "email") -> Response:
        values = {"name": "", "channel": "sms" if channel == "sms" else "email", "subject": "",
                  "html": "", "text": ""}
        return page(request, template=None, values=values, errors={})

    @r.post("/templates/new")
    def create_template(request: Request, actor: Who, form: Form) -> Response:
        return save(request, form, None)

    @r.post("/templates/preview")
    def live_preview(request: Request, actor: Who, form: Form) -> Response:
        values = _values(form, None)
        try:
            customer_id = _customer_id(ctx, str(form.get("customer", "")))
            shown = template_service.preview_draft(ctx, values, customer_id)
        except TidingsError as exc:
            return render(request, "_template_preview.html", fragment=True, shown=None,
                          error=next(iter(field_errors(exc).values())))
        return render(request, "_template_preview.html", fragment=True, shown=shown, error=None)

    @r.get("/templates/{template_id}")
    def template_page(request: Request, actor: Who, template_id: int) -> Response:
        template = template_service.get_template(ctx, template_id)
        return page(request, template=template, values=template, errors={})

    @r.post("/templates/{template_id}")
    def update_template(request: Request, actor: Who, template_id: int, form: Form) -> Response:
        return save(request, form, template_service.get_template(ctx, template_id))

    @r.post("/templates/{template_id}/test-send")
    def send_test(request: Request, actor: Who, template_id: int, form: Form) -> Response:
        to = str(form.get("to", "")).strip()
        try:
            customer_id = _customer_id(ctx, str(form.get("customer", "")))
            test_sends.send_template_test(ctx, template_id, to=to, customer_id=customer_id)
        except TidingsError as exc:
            template = template_service.get_template(ctx, template_id)
            errors = field_errors(exc)
            return page(request, template=template, values=template, status=exc.status,
                        errors={"to": errors.get("to") or next(iter(errors.values()))},
                        test_to=to)
        flash(request, f"A test message is on its way to {to}.")
        return redirect(f"/templates/{template_id}")
