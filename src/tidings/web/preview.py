"""Preview of a template that is not saved yet, for the editor's live preview.

``tidings.services.content.preview`` renders only a saved template. Until the
service offers ``preview_draft(ctx, values, customer_id)`` (used as soon as it
exists), this renders the editor's fields the same way: the sandboxed domain
templates with the customer's fields, a placeholder unsubscribe link and no
tracking.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from tidings.domain.templates import compile_email, compile_sms
from tidings.engine.render import customer_context
from tidings.errors import InvalidInput
from tidings.services import audience, content
from tidings.services.context import Context

SAMPLE: dict[str, Any] = {
    "id": None, "external_id": None, "email": "customer@example.com", "phone": None,
    "first_name": "Alex", "last_name": "Example", "attributes": {},
}


def resolve_customer(ctx: Context, text: str) -> int | None:
    """The id of the customer given by id or email; ``None`` for the sample customer."""
    text = text.strip()
    if not text:
        return None
    if text.isdigit():
        return int(text)
    found = audience.find_customers(ctx, email=text)
    if not found:
        raise InvalidInput(f"There is no customer with the email {text}.", field="customer")
    return int(found[0]["id"])


def preview_draft(ctx: Context, values: dict[str, Any], customer_id: int | None) -> dict[str, Any]:
    service = getattr(content, "preview_draft", None)
    if service is not None:
        return service(ctx, values, customer_id)  # type: ignore[no-any-return]
    customer = SAMPLE if customer_id is None else audience.get_customer(ctx, customer_id)
    row = SimpleNamespace(customer_id=customer["id"],
                          **{k: customer[k] for k in SAMPLE if k != "id"})
    context = {"customer": customer_context(row),
               "unsubscribe_url": f"{ctx.settings.public_url.rstrip('/')}/u/preview",
               "mailing": {"id": None, "name": "Preview"}}
    if values.get("channel") == "sms":
        text = compile_sms(text=values.get("text") or "").render(context)
        return {"channel": "sms", "text": text}
    rendered = compile_email(subject=values.get("subject") or "", html=values.get("html") or "",
                             text=values.get("text") or None).render(context)
    return {"channel": "email", "subject": rendered.subject, "html": rendered.html,
            "text": rendered.text}
