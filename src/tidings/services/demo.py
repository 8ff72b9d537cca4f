"""Demo data for a first look: customers, segments, templates, mailings.

Nothing here runs unless asked for (``tidings demo``, ``tidings serve --demo``).
Everything it makes is recognisably demo and harmless wherever it ends up:

- customers have addresses at :data:`DEMO_DOMAIN` (under ``example.com``,
  reserved by RFC 2606, so no mail to it is ever delivered) and phone numbers
  from Ofcom's range reserved for drama (+44 7700 900000-900999);
- the sender is :data:`DEMO_SENDER` ("Demo shop (Tidings)");
- its segments select demo customers only, so a demo mailing never reaches a
  real customer even in a database that has some;
- the demo mailing is sent only to a ``file://`` outbox (:func:`check_sendable`).
"""

from __future__ import annotations

import random
from typing import Any

from tidings.config import Settings
from tidings.errors import Conflict
from tidings.services import audience, mailings
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.store import content as content_store

DEMO_DOMAIN = "demo.example.com"
DEMO_SENDER = {"from_email": f"demo-shop@{DEMO_DOMAIN}", "from_name": "Demo shop (Tidings)"}
#: The rule that selects the demo customers (and no one else).
DEMO_CUSTOMERS = {"field": "email", "op": "contains", "value": f"@{DEMO_DOMAIN}"}

FIRST = ["Anna", "Boris", "Chloe", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Iris", "Jonas"]
LAST = ["Novak", "Ivanova", "Martin", "Schmidt", "Rossi", "Silva", "Kowalski", "Dubois"]
CITIES = ["Berlin", "Lisbon", "Riga", "Prague", "Lyon"]

HTML = """<html><head><style>h1 { color: #2b5797; } .cta { background: #2b5797; color: #fff;
padding: 8px 14px; text-decoration: none; }</style></head><body>
<h1>Hello {{ customer.first_name or "there" }}!</h1>
<p>Our autumn collection has arrived{% if customer.attributes.city %}
in {{ customer.attributes.city }}{% endif %}.</p>
<p><a class="cta" href="https://shop.example.com/autumn">See what's new</a></p>
<p style="font-size:12px">You get this because you subscribed at our demo shop.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


class DemoNotSendable(Conflict):
    """The demo mailing goes to the outbox only."""

    code = "demo_outbox_only"


def is_empty(ctx: Context) -> bool:
    """Whether the database has no customers (the only database ``serve --demo`` seeds)."""
    with ctx.read() as conn:
        return not content_store.has_customers(conn)


def check_sendable(settings: Settings) -> None:
    """Raise :class:`DemoNotSendable` unless mail goes to a ``file://`` outbox:
    demo addresses must never reach a real mail server, whose reputation a
    batch of undeliverable messages would harm."""
    if not settings.smtp_url.startswith("file://"):
        raise DemoNotSendable(
            "The demo mailing is written to the outbox only, and TIDINGS_SMTP_URL names a "
            "mail server; unset TIDINGS_SMTP_URL, or seed without sending (tidings demo)."
        )


def seed(ctx: Context, *, send: bool = False, size: int = 200) -> dict[str, Any]:
    """Seed ``size`` demo customers (up to 1,000; seeding again updates them),
    two segments of them, an email and an SMS template and a draft mailing.

    With ``send``, also create the mailing "Welcome (demo)" to every demo
    customer and start sending it, after :func:`check_sendable` (which is
    checked before anything is written). Returns the ids made.
    """
    if send:
        check_sendable(ctx.settings)
    if not 1 <= size <= 1000:
        raise ValueError("the demo has 1 to 1,000 customers")
    rng = random.Random(42)
    people = []
    for i in range(size):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        people.append({
            "email": f"{first}.{last}.{i}@{DEMO_DOMAIN}".lower(), "first_name": first,
            "last_name": last, "phone": f"+447700900{i:03d}",
            "attributes": {"city": rng.choice(CITIES), "vip": i % 10 == 0},
        })
    ids = audience.upsert_customers(ctx, people)
    everyone = audience.create_segment(ctx, {"name": "Demo customers", "rules": DEMO_CUSTOMERS})
    segment = audience.create_segment(ctx, {"name": "Demo customers in Riga and Berlin", "rules": {
        "all": [DEMO_CUSTOMERS,
                {"field": "attributes.city", "op": "in", "value": ["Riga", "Berlin"]}]}})
    email_tpl = template_service.create_template(ctx, {"name": "Autumn collection (demo)", "channel": "email",
                                               "subject": "{{ customer.first_name }}, autumn is here",
                                               "html": HTML})
    template_service.create_template(ctx, {"name": "Short SMS (demo)", "channel": "sms",
                                  "text": "Hi {{ customer.first_name }}! New arrivals: https://shop.example.com"})
    draft = mailings.create(ctx, {"name": "Autumn collection (demo)", "segment_id": segment["id"],
                                  "template_id": email_tpl["id"], **DEMO_SENDER})
    summary: dict[str, Any] = {"customers": len(ids), "segments": [everyone["id"], segment["id"]],
                               "draft_mailing": draft["id"]}
    if send:
        sent = mailings.create(ctx, {"name": "Welcome (demo)", "segment_id": everyone["id"],
                                     "template_id": email_tpl["id"], **DEMO_SENDER})
        mailings.send_now(ctx, sent["id"])
        summary["sending_mailing"] = sent["id"]
    return summary
