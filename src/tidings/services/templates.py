"""Templates: create, edit, preview (saved or not yet saved), warnings, starters.

An email template is written in one of two editors, and remembers which
(``editor``):

- ``"html"``: ``html`` is the author's own;
- ``"blocks"``: ``blocks`` is the builder's document
  (:mod:`tidings.domain.templates.blocks`) and ``html`` is made from it
  (MJML) on every save; an ``html`` sent with it is refused.

Both may have a ``preheader``, put into the HTML as hidden text when the
message is rendered (:func:`tidings.store.templates.from_row`). A single
template in an answer also carries ``warnings`` (unknown variables, no
unsubscribe link: :func:`tidings.domain.templates.template_warnings`);
they never stop a save.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.bounds import check_id, check_text
from tidings.domain.messages import Recipient, recipient_of, sample_recipient
from tidings.domain.templates import (
    CUSTOMER_FIELDS,
    STARTERS,
    CompiledEmail,
    CompiledSms,
    blocks_to_html,
    compile_email,
    compile_sms,
    template_warnings,
    validate_blocks,
    with_preheader,
)
from tidings.domain.templates.sandbox import TEXT_ENV, compile_field
from tidings.engine.render import UNSUBSCRIBE_LINK, preview_link, sms_text
from tidings.errors import InvalidInput, NotFound
from tidings.services import sms_parts
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import templates as template_store

FIELDS = ("name", "channel", "subject", "html", "text", "editor", "blocks", "preheader")
EDITORS = ("html", "blocks")
MAX_PREHEADER = 500
#: How the personalisation list names the customer's own fields.
FIELD_LABELS = {"first_name": "First name", "last_name": "Last name", "email": "Email address",
                "phone": "Phone number", "external_id": "Id in the shop", "id": "Tidings id"}


def template_json(row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "channel": row.channel, "editor": row.editor,
            "subject": row.subject, "preheader": row.preheader, "html": row.html, "text": row.text,
            "blocks": row.blocks, "created_at": row.created_at.isoformat(),
            "updated_at": row.updated_at.isoformat()}


def _editor(values: dict[str, Any]) -> str:
    editor = values.get("editor")
    if editor is None:
        editor = "blocks" if values.get("blocks") is not None else "html"
    if editor not in EDITORS:
        raise InvalidInput("editor must be html or blocks.", field="editor")
    return str(editor)


def _validate(values: dict[str, Any]) -> dict[str, Any]:
    """The values to store; raises ``InvalidInput`` naming the field."""
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    for key in FIELDS:
        if key != "blocks" and values.get(key) is not None and not isinstance(values[key], str):
            raise InvalidInput(f"{key} must be a string.", field=key)
    if not (values.get("name") or "").strip():
        raise InvalidInput("A template needs a name.", field="name")
    check_text(values["name"].strip(), "name", label="name")
    channel = values.get("channel") or "email"
    editor = _editor(values)
    if channel == "email":
        if not (values.get("subject") or "").strip():
            raise InvalidInput("An email template needs a subject.", field="subject")
        preheader = (values.get("preheader") or "").strip() or None
        if preheader is not None:
            if len(preheader) > MAX_PREHEADER or "\n" in preheader:
                raise InvalidInput(f"The preheader is one line of at most {MAX_PREHEADER} characters.",
                                   field="preheader")
            compile_field(TEXT_ENV, preheader, "preheader")
        if editor == "blocks":
            blocks = validate_blocks(values.get("blocks"))
            values = {**values, "blocks": blocks, "html": blocks_to_html(blocks)}
        else:
            values = {**values, "blocks": None}
        if not (values.get("html") or "").strip() and not (values.get("text") or "").strip():
            raise InvalidInput("An email template needs html or text.", field="html",
                               manager_message="An email template needs HTML or a plain-text part.")
        compiled: CompiledEmail | CompiledSms = compile_email(
            subject=values["subject"], html=with_preheader(values.get("html") or "", preheader),
            text=values.get("text"))
        values = {**values, "preheader": preheader}
    elif channel == "sms":
        if editor != "html" or values.get("blocks") is not None:
            raise InvalidInput("An SMS template is text: it has no blocks.", field="blocks")
        if not (values.get("text") or "").strip():
            raise InvalidInput("An SMS template needs text.", field="text")
        compiled = compile_sms(text=values["text"])
        values = {**values, "subject": None, "html": None, "preheader": None, "blocks": None}
    else:
        raise InvalidInput("channel must be email or sms.", field="channel")
    _check_budget(compiled)
    return {**values, "channel": channel, "editor": editor, "name": values["name"].strip()}


def _refuse_html_with_blocks(data: dict[str, Any], editor: str) -> None:
    if editor == "blocks" and (data.get("html") or "").strip():
        raise InvalidInput('A template made of blocks gets its html from them: leave html out, or '
                           'send "editor": "html" to write the HTML yourself.', field="html")


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
    _refuse_html_with_blocks(data, _editor(data))
    values = _validate(dict(data))
    now = ctx.now()
    with ctx.tx() as conn:
        template_id = template_store.insert(conn, {k: values.get(k) for k in FIELDS}, now=now)
        return _with_warnings(conn, template_json(_template(conn, template_id)))


def update_template(ctx: Context, template_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Change some fields. Switching a template to ``"editor": "html"`` keeps the
    HTML made from its blocks, to edit by hand; switching to ``"blocks"`` needs
    ``blocks``."""
    with ctx.tx() as conn:
        current = template_json(_template(conn, template_id))
        editor = data.get("editor", current["editor"])
        if isinstance(editor, str) and editor in EDITORS:
            _refuse_html_with_blocks(data, editor)
            if editor == "blocks" and current["editor"] == "html" and data.get("blocks") is None:
                raise InvalidInput("To build this template from blocks, send its blocks too.",
                                   field="blocks")
        merged = {k: current[k] for k in FIELDS} | dict(data)
        if editor == "html":
            merged["blocks"] = None
        if merged["channel"] != current["channel"]:
            raise InvalidInput("The channel of a template cannot change.", field="channel")
        values = _validate(merged)
        template_store.update(conn, template_id, {k: values.get(k) for k in FIELDS},
                              now=ctx.now())
        return _with_warnings(conn, template_json(_template(conn, template_id)))


def _template(conn: sa.Connection, template_id: int) -> Any:
    row = template_store.get_row(conn, template_id)
    if row is None:
        raise NotFound(f"There is no template {template_id}.", code="template_not_found")
    return row


def _warnings(values: dict[str, Any], attributes: list[str]) -> list[dict[str, Any]]:
    sources = {k: values.get(k) for k in ("subject", "preheader", "html", "text")}
    found = template_warnings(sources, attributes=attributes, email=values.get("channel") != "sms")
    return [{"code": w.code, "variable": w.variable, "message": w.message} for w in found]


def _with_warnings(conn: sa.Connection, template: dict[str, Any]) -> dict[str, Any]:
    return {**template, "warnings": _warnings(template, template_store.attribute_keys(conn))}


def get_template(ctx: Context, template_id: int) -> dict[str, Any]:
    """The template, with its ``warnings``."""
    with ctx.read() as conn:
        return _with_warnings(conn, template_json(_template(conn, template_id)))


def list_templates(ctx: Context) -> list[dict[str, Any]]:
    """Every template (without ``warnings``: see :func:`get_template`)."""
    with ctx.read() as conn:
        return [template_json(r) for r in template_store.list_rows(conn)]


def variables(ctx: Context) -> dict[str, Any]:
    """What a template can personalise with: the customer's fields and the
    attribute keys customers actually have, each with the Jinja to insert."""
    with ctx.read() as conn:
        keys = template_store.attribute_keys(conn)
    return {"fields": [{"name": f, "label": FIELD_LABELS[f], "variable": f"customer.{f}"}
                       for f in CUSTOMER_FIELDS],
            "attributes": [{"name": k, "label": k, "variable": _attribute_variable(k)} for k in keys]}


def _attribute_variable(key: str) -> str:
    if key.isidentifier() and not key.startswith("_"):
        return f"customer.attributes.{key}"
    return f"customer.attributes[{key!r}]"


def starters() -> list[dict[str, Any]]:
    """The builder's starter layouts (see :mod:`tidings.domain.templates.starters`)."""
    return [{"key": s.key, "name": s.name, "description": s.description, "subject": s.subject,
             "preheader": s.preheader, "blocks": [dict(b) for b in s.blocks]}
            for s in STARTERS.values()]


def _preview_recipient(conn: sa.Connection, customer_id: int | None) -> Recipient:
    if customer_id is None:
        return sample_recipient()
    check_id(customer_id, "customer_id", what="customer")
    customer = customer_store.get(conn, customer_id)
    if customer is None:
        raise InvalidInput(f"There is no customer {customer_id}.", field="customer_id")
    return recipient_of(customer)


def _render_preview(ctx: Context, values: dict[str, Any], recipient: Recipient) -> dict[str, Any]:
    """``values`` (``channel``, ``subject``, ``html``, ``text``, ``preheader``)
    rendered for ``recipient`` with a placeholder unsubscribe link and no tracking.
    An SMS is rendered as it would go (short links of their real length that
    lead nowhere, the opt-out line when the sender needs one), with its ``sms``
    summary (:func:`tidings.services.sms_parts.summary`)."""
    context = {"customer": recipient.customer_context(),
               "unsubscribe_url": f"{ctx.settings.public_url.rstrip('/')}/u/preview",
               "mailing": {"id": None, "name": "Preview"}}
    if values.get("channel") == "sms":
        compiled = compile_sms(text=values.get("text") or "")
        text = sms_text(compiled, context, link=preview_link(ctx.settings.public_url),
                        unsubscribe=preview_link(ctx.settings.public_url, UNSUBSCRIBE_LINK)(""),
                        opt_out=ctx.settings.sms_opt_out_link)
        return {"channel": "sms", "text": text, "sms": sms_parts.summary(text)}
    html = with_preheader(values.get("html") or "", values.get("preheader"))
    rendered = compile_email(subject=values.get("subject") or "", html=html,
                             text=values.get("text") or None).render(context)
    preheader = values.get("preheader")
    shown = compile_sms(text=preheader).render(context) if preheader else ""
    return {"channel": "email", "subject": rendered.subject, "preheader": shown,
            "html": rendered.html, "text": rendered.text}


def preview(ctx: Context, template_id: int, customer_id: int | None) -> dict[str, Any]:
    """The saved template as this customer would get it (tracking links not
    applied); the sample customer (Alex Example) when ``customer_id`` is None.

    Returns ``{"channel": "email", "subject", "preheader", "html", "text",
    "warnings"}`` or ``{"channel": "sms", "text", "sms": {"encoding",
    "characters", "parts", "ucs2_because", "warning"}, "warnings"}``. Raises
    ``NotFound``, ``InvalidInput`` for an unknown customer, ``TemplateSyntaxError``."""
    with ctx.read() as conn:
        template = template_json(_template(conn, template_id))
        recipient = _preview_recipient(conn, customer_id)
        attributes = template_store.attribute_keys(conn)
    return {**_render_preview(ctx, template, recipient), "warnings": _warnings(template, attributes)}


def preview_draft(ctx: Context, values: dict[str, Any], customer_id: int | None) -> dict[str, Any]:
    """Like :func:`preview`, for template values not saved yet (the editor's
    live preview): ``channel`` (default email), ``editor``, ``subject``,
    ``preheader``, ``html`` or ``blocks``, ``text``; other keys are ignored,
    and nothing is stored. The answer also has ``warnings``."""
    channel = values.get("channel") or "email"
    if channel not in ("email", "sms"):
        raise InvalidInput("channel must be email or sms.", field="channel")
    for key in ("subject", "html", "text", "preheader"):
        if values.get(key) is not None and not isinstance(values[key], str):
            raise InvalidInput(f"{key} must be a string.", field=key)
    values = {**values, "channel": channel}
    if channel == "email" and _editor(values) == "blocks":
        values["html"] = blocks_to_html(validate_blocks(values.get("blocks")))
    with ctx.read() as conn:
        recipient = _preview_recipient(conn, customer_id)
        attributes = template_store.attribute_keys(conn)
    return {**_render_preview(ctx, values, recipient), "warnings": _warnings(values, attributes)}
