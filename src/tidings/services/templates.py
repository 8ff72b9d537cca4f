"""Templates: create, edit, preview (saved or not yet saved)."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.bounds import check_id, check_text
from tidings.domain.messages import Recipient, recipient_of, sample_recipient
from tidings.domain.templates import CompiledEmail, CompiledSms, compile_email, compile_sms
from tidings.errors import InvalidInput, NotFound
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import templates as template_store

FIELDS = ("name", "channel", "subject", "html", "text")


def template_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "channel": row.channel, "subject": row.subject,
            "html": row.html, "text": row.text, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat()}


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    for key in FIELDS:
        if values.get(key) is not None and not isinstance(values[key], str):
            raise InvalidInput(f"{key} must be a string.", field=key)
    if not (values.get("name") or "").strip():
        raise InvalidInput("A template needs a name.", field="name")
    check_text(values["name"].strip(), "name", label="name")
    channel = values.get("channel") or "email"
    if channel == "email":
        if not (values.get("subject") or "").strip():
            raise InvalidInput("An email template needs a subject.", field="subject")
        if not (values.get("html") or "").strip() and not (values.get("text") or "").strip():
            raise InvalidInput("An email template needs html or text.", field="html",
                               manager_message="An email template needs HTML or a plain-text part.")
        compiled: CompiledEmail | CompiledSms = compile_email(
            subject=values["subject"], html=values.get("html") or "", text=values.get("text"))
    elif channel == "sms":
        if not (values.get("text") or "").strip():
            raise InvalidInput("An SMS template needs text.", field="text")
        compiled = compile_sms(text=values["text"])
        values = {**values, "subject": None, "html": None}
    else:
        raise InvalidInput("channel must be email or sms.", field="channel")
    _check_budget(compiled)
    return {**values, "channel": channel, "name": values["name"].strip()}


def _check_budget(compiled: CompiledEmail | CompiledSms) -> None:
    """A template that goes over its rendering budget for the sample customer
    would for every customer: refused when it is saved. Other render errors
    depend on the customer's data, and are shown by the preview."""
    try:
        compiled.render({"customer": sample_recipient().customer_context(),
                         "unsubscribe_url": "https://example.invalid/u/x",
                         "mailing": {"id": None, "name": "Preview"}})
    except InvalidInput as exc:
        if exc.code == "template_too_costly":
            raise


def create_template(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    values = _validate(dict(data))
    now = ctx.now()
    with ctx.tx() as conn:
        template_id = template_store.insert(conn, {k: values.get(k) for k in FIELDS}, now=now)
        return template_json(_template(conn, template_id))


def update_template(ctx: Context, template_id: int, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.tx() as conn:
        current = template_json(_template(conn, template_id))
        merged = {k: current[k] for k in FIELDS} | dict(data)
        if merged["channel"] != current["channel"]:
            raise InvalidInput("The channel of a template cannot change.", field="channel")
        values = _validate(merged)
        template_store.update(conn, template_id, {k: values.get(k) for k in FIELDS},
                                      now=ctx.now())
        return template_json(_template(conn, template_id))


def _template(conn: sa.Connection, template_id: int) -> Any:
    row = template_store.get_row(conn, template_id)
    if row is None:
        raise NotFound(f"There is no template {template_id}.", code="template_not_found")
    return row


def get_template(ctx: Context, template_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return template_json(_template(conn, template_id))


def list_templates(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [template_json(r) for r in template_store.list_rows(conn)]


def _preview_recipient(conn: sa.Connection, customer_id: int | None) -> Recipient:
    if customer_id is None:
        return sample_recipient()
    check_id(customer_id, "customer_id", what="customer")
    customer = customer_store.get(conn, customer_id)
    if customer is None:
        raise InvalidInput(f"There is no customer {customer_id}.", field="customer_id")
    return recipient_of(customer)


def _render_preview(ctx: Context, values: dict[str, Any], recipient: Recipient) -> dict[str, Any]:
    """``values`` (``channel``, ``subject``, ``html``, ``text``) rendered for
    ``recipient`` with a placeholder unsubscribe link and no tracking."""
    context = {"customer": recipient.customer_context(),
               "unsubscribe_url": f"{ctx.settings.public_url.rstrip('/')}/u/preview",
               "mailing": {"id": None, "name": "Preview"}}
    if values.get("channel") == "sms":
        return {"channel": "sms", "text": compile_sms(text=values.get("text") or "").render(context)}
    rendered = compile_email(subject=values.get("subject") or "", html=values.get("html") or "",
                             text=values.get("text") or None).render(context)
    return {"channel": "email", "subject": rendered.subject, "html": rendered.html, "text": rendered.text}


def preview(ctx: Context, template_id: int, customer_id: int | None) -> dict[str, Any]:
    """The saved template as this customer would get it (tracking links not
    applied); the sample customer (Alex Example) when ``customer_id`` is None.

    Returns ``{"channel": "email", "subject", "html", "text"}`` or
    ``{"channel": "sms", "text"}``. Raises ``NotFound``, ``InvalidInput`` for
    an unknown customer, ``TemplateSyntaxError``."""
    with ctx.read() as conn:
        template = template_json(_template(conn, template_id))
        recipient = _preview_recipient(conn, customer_id)
    return _render_preview(ctx, template, recipient)


def preview_draft(ctx: Context, values: dict[str, Any], customer_id: int | None) -> dict[str, Any]:
    """Like :func:`preview`, for template values not saved yet (the editor's
    live preview): ``channel`` (default email), ``subject``, ``html``, ``text``;
    other keys are ignored, and nothing is stored."""
    channel = values.get("channel") or "email"
    if channel not in ("email", "sms"):
        raise InvalidInput("channel must be email or sms.", field="channel")
    for key in ("subject", "html", "text"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise InvalidInput(f"{key} must be a string.", field=key)
    with ctx.read() as conn:
        recipient = _preview_recipient(conn, customer_id)
    return _render_preview(ctx, {**values, "channel": channel}, recipient)


