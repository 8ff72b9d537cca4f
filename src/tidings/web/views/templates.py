"""Templates: the list, the editors (the block builder and raw HTML) with live
desktop and phone previews for a chosen customer, image uploads, test sends.

The builder's page is rendered here; ``static/builder.js`` edits the list of
blocks in the browser and keeps it, as JSON, in the form's ``blocks`` field,
which is what a save and the live preview post.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response
from starlette.datastructures import UploadFile

from tidings.domain.media import MAX_BYTES
from tidings.domain.templates import BLOCK_NAMES, NETWORKS, STARTERS, validate_blocks
from tidings.errors import InvalidInput, TidingsError
from tidings.services import audience, media, shop, test_sends
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.wording import say

FIELDS = ("name", "channel", "subject", "preheader", "html", "text", "editor")


def _blocks(text: str) -> Any:
    try:
        return json.loads(text or "[]")
    except ValueError:
        raise InvalidInput("blocks is not valid JSON.", field="blocks",
                           manager_message="The email's blocks could not be read; reload the "
                                           "page and try again.") from None


def _values(form: Any, template: dict[str, Any] | None) -> dict[str, Any]:
    """The template fields of an editor form, as the service takes them."""
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in FIELDS if k in form}
    values["channel"] = template["channel"] if template else values.get("channel") or "email"
    if values["channel"] == "sms":
        values = {k: v for k, v in values.items() if k not in ("subject", "html", "preheader", "editor")}
        return values
    if not values.get("text", "").strip():
        values["text"] = None  # derived from the HTML
    if values.get("editor") == "blocks":
        values["blocks"] = form.get("blocks", "")  # parsed by _parsed, where an error can show
        values.pop("html", None)
    return values


def _parsed(values: dict[str, Any]) -> dict[str, Any]:
    if isinstance(values.get("blocks"), str):
        return {**values, "blocks": _blocks(values["blocks"])}
    return values


def _customer_id(ctx: Context, text: str) -> int | None:
    """The customer given by id or email in the "For customer" field; None (the
    sample customer) when it is empty."""
    text = text.strip()
    if not text:
        return None
    if text.isascii() and text.isdigit() and len(text) <= 30:
        return int(text)
    found = audience.find_customers(ctx, email=text)
    if not found:
        raise InvalidInput(f"There is no customer with the email {text}.", field="customer")
    return int(found[0]["id"])


def _blocks_json(values: dict[str, Any]) -> str:
    blocks = values.get("blocks")
    return blocks if isinstance(blocks, str) else json.dumps(blocks or [], ensure_ascii=False)


def add_routes(r: APIRouter, ctx: Context) -> None:
    def page(request: Request, *, template: dict[str, Any] | None, values: dict[str, Any],
             errors: dict[str, str], status: int = 200, test_to: str = "",
             starter: str = "") -> Response:
        customers = audience.find_customers(ctx, limit=50)
        block_errors = [message for key, message in errors.items() if key.startswith("blocks")]
        return render(request, "template.html", status_code=status, template=template,
                      values=values, errors=errors, customers=customers, test_to=test_to,
                      default_from=shop.default_sender(ctx).email,
                      variables=template_service.variables(ctx), block_names=BLOCK_NAMES,
                      networks=NETWORKS, starters=list(STARTERS.values()), starter=starter,
                      blocks_json=_blocks_json(values), block_errors=block_errors)

    def save(request: Request, form: Any, template: dict[str, Any] | None) -> Response:
        values = _values(form, template)
        try:
            parsed = _parsed(values)
            if template is None:
                saved = template_service.create_template(ctx, parsed)
            else:
                saved = template_service.update_template(ctx, template["id"], parsed)
        except TidingsError as exc:
            return page(request, template=template, values=values, errors=field_errors(exc),
                        status=exc.status)
        flash(request, f"Template {saved['name']} saved.")
        return redirect(f"/templates/{saved['id']}")

    @r.get("/templates")
    def templates_page(request: Request, actor: Who) -> Response:
        return render(request, "templates.html", templates=template_service.list_templates(ctx))

    @r.get("/templates/new")
    def new_template(request: Request, actor: Who, channel: str = "email", editor: str = "blocks",
                     starter: str = "blank") -> Response:
        values: dict[str, Any]
        if channel == "sms":
            values = {"name": "", "channel": "sms", "text": "", "editor": "html"}
        elif editor == "html":
            values = {"name": "", "channel": "email", "editor": "html", "subject": "",
                      "preheader": "", "html": "", "text": ""}
        else:
            chosen = STARTERS.get(starter, STARTERS["blank"])
            values = {"name": "" if chosen.key == "blank" else chosen.name, "channel": "email",
                      "editor": "blocks", "subject": chosen.subject, "preheader": chosen.preheader,
                      "blocks": validate_blocks([dict(b) for b in chosen.blocks]), "text": ""}
            starter = chosen.key
        return page(request, template=None, values=values, errors={}, starter=starter)

    @r.post("/templates/new")
    def create_template(request: Request, actor: Who, form: Form) -> Response:
        return save(request, form, None)

    @r.post("/templates/preview")
    def live_preview(request: Request, actor: Who, form: Form) -> Response:
        values = _values(form, None)
        try:
            customer_id = _customer_id(ctx, str(form.get("customer", "")))
            shown = template_service.preview_draft(ctx, _parsed(values), customer_id)
        except TidingsError as exc:
            return render(request, "_template_preview.html", fragment=True, shown=None,
                          error=next(iter(field_errors(exc).values())))
        return render(request, "_template_preview.html", fragment=True, shown=shown, error=None)

    @r.post("/templates/media")
    async def upload_image(request: Request, actor: Who) -> Response:
        """An image from the builder (multipart field ``file``): JSON with its
        public ``url``, or ``{"error"}`` in the manager's words (422)."""
        form = await request.form(max_files=1, max_fields=5)
        upload = form.get("file")
        try:
            if not isinstance(upload, UploadFile):
                raise InvalidInput("Choose an image file to upload.", field="file")
            data = await upload.read(MAX_BYTES + 1)
            saved = media.upload(ctx, data, filename=upload.filename)
        except TidingsError as exc:
            return JSONResponse({"error": say(exc)}, status_code=exc.status,
                                headers={"Cache-Control": "no-store"})
        return JSONResponse(saved, status_code=201, headers={"Cache-Control": "no-store"})

    @r.get("/templates/{template_id}")
    def template_page(request: Request, actor: Who, template_id: int) -> Response:
        template = template_service.get_template(ctx, template_id)
        return page(request, template=template, values=template, errors={})

    @r.post("/templates/{template_id}")
    def update_template(request: Request, actor: Who, template_id: int, form: Form) -> Response:
        return save(request, form, template_service.get_template(ctx, template_id))

    @r.post("/templates/{template_id}/editor")
    def switch_to_html(request: Request, actor: Who, template_id: int) -> Response:
        """A builder template becomes an HTML one, keeping the HTML made from its blocks."""
        template_service.update_template(ctx, template_id, {"editor": "html"})
        flash(request, "The template is now plain HTML, made from its blocks: edit it by hand.")
        return redirect(f"/templates/{template_id}")

    @r.post("/templates/{template_id}/test-send")
    def send_test(request: Request, actor: Who, template_id: int, form: Form) -> Response:
        to = str(form.get("to", "")).strip()
        try:
            customer_id = _customer_id(ctx, str(form.get("customer", "")))
            test_sends.send_template_test(ctx, template_id, to=to, customer_id=customer_id,
                                          actor=actor)
        except TidingsError as exc:
            template = template_service.get_template(ctx, template_id)
            errors = field_errors(exc)
            return page(request, template=template, values=template, status=exc.status,
                        errors={"to": errors.get("to") or next(iter(errors.values()))},
                        test_to=to)
        flash(request, f"A test message is on its way to {to}.")
        return redirect(f"/templates/{template_id}")
