"""Templates: create, edit, preview; quota."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa

from tidings.domain.templates import compile_email, compile_sms
from tidings.engine.render import customer_context
from tidings.errors import InvalidInput, NotFound
from tidings.services.auth import Actor
from tidings.services.context import Context
from tidings.services.engagement import send_test_message
from tidings.services.mailings import check_sending_domain
from tidings.store import auth as auth_store
from tidings.store import content as content_store

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
    channel = values.get("channel") or "email"
    if channel == "email":
        if not (values.get("subject") or "").strip():
            raise InvalidInput("An email template needs a subject.", field="subject")
        if not (values.get("html") or "").strip() and not (values.get("text") or "").strip():
            raise InvalidInput("An email template needs html or text.", field="html",
                               manager_message="An email template needs HTML or a plain-text part.")
        compile_email(subject=values["subject"], html=values.get("html") or "", text=values.get("text"))
    elif channel == "sms":
        if not (values.get("text") or "").strip():
            raise InvalidInput("An SMS template needs text.", field="text")
        compile_sms(text=values["text"])
        values = {**values, "subject": None, "html": None}
    else:
        raise InvalidInput("channel must be email or sms.", field="channel")
    return {**values, "channel": channel, "name": values["name"].strip()}


def create_template(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    values = _validate(dict(data))
    now = ctx.now()
    with ctx.tx() as conn:
        template_id = content_store.insert_template(conn, {k: values.get(k) for k in FIELDS}, now=now)
        return template_json(_template(conn, template_id))


def update_template(ctx: Context, template_id: int, data: dict[str, Any]) -> dict[str, Any]:
    with ctx.tx() as conn:
        current = template_json(_template(conn, template_id))
        merged = {k: current[k] for k in FIELDS} | dict(data)
        if merged["channel"] != current["channel"]:
            raise InvalidInput("The channel of a template cannot change.", field="channel")
        values = _validate(merged)
        content_store.update_template(conn, template_id, {k: values.get(k) for k in FIELDS},
                                      now=ctx.now())
        return template_json(_template(conn, template_id))


def _template(conn: sa.Connection, template_id: int) -> Any:
    row = content_store.get_template(conn, template_id)
    if row is None:
        raise NotFound(f"There is no template {template_id}.", code="template_not_found")
    return row


def get_template(ctx: Context, template_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return template_json(_template(conn, template_id))


def list_templates(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [template_json(r) for r in content_store.list_templates(conn)]


#: Who a preview is rendered for when no customer is chosen.
SAMPLE_CUSTOMER: dict[str, Any] = {
    "id": None, "external_id": None, "email": "customer@example.com", "phone": None,
    "first_name": "Alex", "last_name": "Example", "attributes": {},
}


def _preview_customer(conn: sa.Connection, customer_id: int | None) -> dict[str, Any]:
    if customer_id is None:
        return SAMPLE_CUSTOMER
    row = content_store.customer_row(conn, customer_id)
    if row is None:
        raise InvalidInput(f"There is no customer {customer_id}.", field="customer_id")
    return dict(row._mapping)


def _render_preview(ctx: Context, values: dict[str, Any], customer: dict[str, Any]) -> dict[str, Any]:
    """``values`` (``channel``, ``subject``, ``html``, ``text``) rendered for
    ``customer`` with a placeholder unsubscribe link and no tracking."""
    row = SimpleNamespace(customer_id=customer["id"],
                          **{k: customer[k] for k in SAMPLE_CUSTOMER if k != "id"})
    context = {"customer": customer_context(row),
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
        customer = _preview_customer(conn, customer_id)
    return _render_preview(ctx, template, customer)


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
        customer = _preview_customer(conn, customer_id)
    return _render_preview(ctx, {**values, "channel": channel}, customer)


def test_send(ctx: Context, template_id: int, *, to: str, customer_id: int | None) -> None:
    """Send the saved email template to the address ``to``, once, as a test.

    It comes from the default sender (``default_from_email``), rendered for
    ``customer_id``, else for the customer with that address, else for the
    sample customer; see :func:`~tidings.services.engagement.send_test_message`
    (it is not counted and uses no quota). Raises ``NotFound``,
    ``InvalidInput`` (an SMS template, a bad address: ``field="to"``; an
    unknown customer: ``field="customer"``), and ``Conflict`` with code
    ``domain_not_verified`` or ``test_send_failed``.
    """
    if not to.strip():
        raise InvalidInput("Give the address to send the test to.", field="to")
    from_email = ctx.settings.default_from_email
    with ctx.read() as conn:
        template = _template(conn, template_id)
        if template.channel != "email":
            raise InvalidInput("Test sends are for email templates.", field="to")
        check_sending_domain(conn, ctx, from_email)
    sender = {"id": None, "name": f"Test of {template.name}", "channel": "email",
              "template_id": template_id, "from_email": from_email,
              "from_name": ctx.settings.default_from_name, "reply_to": None, "conversion": None}
    send_test_message(ctx, mailing=sender, to=to, customer_id=customer_id, field="to",
                      headers={"X-Tidings-Template": str(template_id)})


def get_quota(ctx: Context) -> dict[str, Any]:
    with ctx.tx() as conn:
        return {ch: {"balance": auth_store.quota_balance(conn, ch)} for ch in ("email", "sms")}


def topup(ctx: Context, *, channel: str, amount: Any, actor: Actor) -> dict[str, Any]:
    actor.require_admin()
    if channel not in ("email", "sms"):
        raise InvalidInput("channel must be email or sms.", field="channel")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidInput("amount must be a positive whole number.", field="amount",
                           manager_message="Give a whole number of messages, 1 or more.")
    with ctx.tx() as conn:
        auth_store.topup(conn, channel, amount)
    return get_quota(ctx)
