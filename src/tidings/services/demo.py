"""Demo data for a first look: customers, a segment, templates, mailings."""

from __future__ import annotations

import random
from typing import Any

from tidings.services import audience, mailings
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.store import content as content_store

FIRST = ["Anna", "Boris", "Chloe", "Dmitri", "Emma", "Farid", "Greta", "Hugo", "Iris", "Jonas"]
LAST = ["Novak", "Ivanova", "Martin", "Schmidt", "Rossi", "Silva", "Kowalski", "Dubois"]
CITIES = ["Berlin", "Lisbon", "Riga", "Prague", "Lyon"]

HTML = """<html><head><style>h1 { color: #2b5797; } .cta { background: #2b5797; color: #fff;
padding: 8px 14px; text-decoration: none; }</style></head><body>
<h1>Hello {{ customer.first_name or "there" }}!</h1>
<p>Our autumn collection has arrived{% if customer.attributes.city %}
in {{ customer.attributes.city }}{% endif %}.</p>
<p><a class="cta" href="https://shop.example.com/autumn">See what's new</a></p>
<p style="font-size:12px">You get this because you subscribed at our shop.
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p>
</body></html>"""


def is_empty(ctx: Context) -> bool:
    with ctx.tx() as conn:
        return not content_store.has_customers(conn)


def seed(ctx: Context, *, send: bool = False, size: int = 200) -> dict[str, Any]:
    rng = random.Random(42)
    people = []
    for i in range(size):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        people.append({
            "email": f"{first}.{last}.{i}@example.com".lower(), "first_name": first, "last_name": last,
            "phone": f"+3712{i:07d}",
            "attributes": {"city": rng.choice(CITIES), "vip": i % 10 == 0},
        })
    ids = audience.upsert_customers(ctx, people)
    everyone = audience.create_segment(ctx, {"name": "Everyone", "rules": {}})
    segment = audience.create_segment(ctx, {"name": "Riga and Berlin", "rules": {
        "any": [{"field": "attributes.city", "op": "eq", "value": "Riga"},
                {"field": "attributes.city", "op": "eq", "value": "Berlin"}]}})
    email_tpl = template_service.create_template(ctx, {"name": "Autumn collection", "channel": "email",
                                               "subject": "{{ customer.first_name }}, autumn is here",
                                               "html": HTML})
    template_service.create_template(ctx, {"name": "Short SMS", "channel": "sms",
                                  "text": "Hi {{ customer.first_name }}! New arrivals: https://shop.example.com"})
    draft = mailings.create(ctx, {"name": "Autumn collection", "segment_id": segment["id"],
                                  "template_id": email_tpl["id"]})
    summary: dict[str, Any] = {"customers": len(ids), "segments": [everyone["id"], segment["id"]],
                               "draft_mailing": draft["id"]}
    if send:
        sent = mailings.create(ctx, {"name": "Welcome (demo)", "segment_id": everyone["id"],
                                     "template_id": email_tpl["id"]})
        mailings.send_now(ctx, sent["id"])
        summary["sending_mailing"] = sent["id"]
    return summary
