"""Arranging a test through the API: customers, a segment of everyone, a template,
a draft mailing, and sending it. Every test module arranges with these.

``draft_mailing(api, numbered(3))`` makes customers c000@example.org,
c001@example.org, c002@example.org (first names N0, N1, N2), a segment of
everyone, an email template and a draft mailing from news@shop.example.com,
and returns ``{"ids", "customers", "segment", "template", "mailing"}``.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from tests.smtpserver import Received, SmtpServer
from tidings.services.context import Context
from tidings.services.sending import make_worker

#: The public URL of the test contexts (``make_ctx``).
BASE = "http://tidings.test"
FROM = "news@shop.example.com"
HTML = ('<p>Hello {{ customer.first_name }}</p><p><a href="https://shop.example.com/x">Shop</a></p>'
        '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')


#: A template with two tracked links, for engagement tests.
TRACKED_HTML = ('<p>Hello {{ customer.first_name }}</p>'
                '<p><a href="https://shop.example.com/sale?color=red#top">Sale</a> '
                '<a href="https://shop.example.com/new">New</a></p>'
                '<p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>')
#: The User-Agent of a link scanner, whose fetches count as nobody's.
MIMECAST = "Mimecast-URL-Protect/1.0"


def numbered(n: int) -> list[str]:
    """``c000@example.org``, ``c001@example.org``, ..."""
    return [f"c{i:03d}@example.org" for i in range(n)]


def make_template(api: Any, *, name: str = "t", subject: str = "Hi",
                  html: str = TRACKED_HTML) -> int:
    body = {"name": name, "channel": "email", "subject": subject, "html": html}
    return int(api.ok("POST", "/templates", body, status=201)["id"])


def draft_mailing(api: Any, emails: Sequence[str], *, extra: Sequence[dict[str, Any]] = (),
                  name: str = "Autumn", subject: str = "Hi {{ customer.first_name }}",
                  html: str = HTML, from_email: str = FROM,
                  conversion: dict[str, Any] | None = None) -> dict[str, Any]:
    """Customers with these addresses (first names N0, N1, ...) and ``extra``
    customers as given, a segment of everyone, a template and a draft mailing."""
    people = [{"email": e, "first_name": f"N{i}"} for i, e in enumerate(emails)] + list(extra)
    ids = api.ok("POST", "/customers", {"customers": people}, status=201)["ids"] if people else []
    segment = api.ok("POST", "/segments", {"name": "all", "rules": {}}, status=201)
    template = api.ok("POST", "/templates", {"name": "t", "channel": "email", "subject": subject,
                                             "html": html}, status=201)
    body: dict[str, Any] = {"name": name, "segment_id": segment["id"], "template_id": template["id"],
                            "from_email": from_email}
    if conversion is not None:
        body["conversion"] = conversion
    mailing = api.ok("POST", "/mailings", body, status=201)
    return {"ids": ids, "customers": dict(zip(emails, ids, strict=False)), "segment": segment,
            "template": template, "mailing": mailing}


def tracked_mailing(api: Any, emails: Sequence[str], **overrides: Any) -> dict[str, Any]:
    """:func:`draft_mailing` "Spring" with :data:`TRACKED_HTML` (subject "Hi"),
    for engagement tests; ``overrides`` are passed on."""
    return draft_mailing(api, emails, **({"name": "Spring", "subject": "Hi", "html": TRACKED_HTML}
                                         | overrides))


def send(api: Any, ctx: Context, mailing_id: int) -> None:
    """Send now, and let a worker send everything."""
    api.ok("POST", f"/mailings/{mailing_id}/send")
    make_worker(ctx).run_until_idle()


# -- reading what was sent ------------------------------------------------------------


@dataclass(frozen=True)
class Links:
    pixel: str
    clicks: list[str]
    unsubscribe: str
    list_unsubscribe: str


def mail_to(server: SmtpServer, address: str, mailing_id: int) -> Received:
    found = [m for m in server.messages
             if m.rcpt == address and m.message["X-Tidings-Mailing"] == str(mailing_id)]
    assert len(found) == 1, f"{len(found)} messages of mailing {mailing_id} to {address}"
    return found[0]


def links_of(received: Received) -> Links:
    """The tracking URLs in a delivered message, in the order they appear."""
    html = received.message.get_body(("html",)).get_content()
    pixels = re.findall(rf"{re.escape(BASE)}/t/o/[A-Za-z0-9_-]+", html)
    clicks = re.findall(rf"{re.escape(BASE)}/t/c/[A-Za-z0-9_-]+", html)
    unsubscribe = re.findall(rf"{re.escape(BASE)}/u/[A-Za-z0-9_-]+", html)
    assert len(pixels) == 1 and len(unsubscribe) == 1
    return Links(pixel=pixels[0], clicks=clicks, unsubscribe=unsubscribe[0],
                 list_unsubscribe=received.message["List-Unsubscribe"].strip("<>"))


def visit(api: Any, url: str, method: str = "GET", **kw: Any) -> Any:
    """Fetch one of our public URLs like a mail client: no token, no redirects followed."""
    assert url.startswith(BASE), url
    return api.client.request(method, url.removeprefix(BASE), follow_redirects=False, **kw)


def stats(api: Any, mailing_id: int) -> dict[str, Any]:
    return api.ok("GET", f"/mailings/{mailing_id}/stats")
