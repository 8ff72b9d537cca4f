"""Microseconds per message on the content hot path: render, link rewrite, MIME build.

Run: ``.venv/bin/python bench/content.py``. A ~4 KB newsletter with a
``<style>`` block, six personal fields and five tracked links (plus the
unsubscribe link), compiled once like a mailing; each figure is the best of
five ``timeit`` runs divided by the loop count.
"""

from __future__ import annotations

import timeit

from tidings.domain.templates import compile_email, merge_utm
from tidings.domain.tracking import sign_click, sign_message_token
from tidings.transports.mime import MessageFactory

SECRET = b"0123456789abcdef0123456789abcdef"
BASE = "https://mail.shop.example"
UTM = {"utm_source": "tidings", "utm_medium": "email", "utm_campaign": "spring-sale"}

PRODUCT = """
<tr>
  <td class="product">
    <a href="https://shop.example/products/{n}?ref=mail"><img src="https://cdn.shop.example/p/{n}.jpg"
       alt="Product {n}" width="160"></a>
    <h3>Spring item number {n}</h3>
    <p>Light, comfortable and made to last. Now with {n}0% off for members like you,
       {{{{ customer.first_name }}}}. Sizes S to XL, colours sand, moss and sea.</p>
    <a class="button" href="https://shop.example/products/{n}?ref=mail&amp;variant=b">Buy now</a>
  </td>
</tr>"""

HTML = (
    """<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>{{ mailing.name }}</title>
<style>
  body { margin: 0; padding: 0; background: #f4f1ea; font-family: Georgia, serif; }
  h1 { font-size: 28px; color: #2d3a2e; margin: 0 0 12px; }
  h3 { font-size: 18px; color: #2d3a2e; }
  p { font-size: 15px; line-height: 1.5; color: #333; }
  .product { padding: 16px; background: #fff; border-bottom: 1px solid #e5e0d5; }
  .button { display: inline-block; padding: 10px 18px; background: #2d3a2e; color: #fff; }
  .footer p { font-size: 12px; color: #888; }
  @media (max-width: 600px) { h1 { font-size: 22px; } }
</style></head>
<body>
<div style="display:none">Spring sale for {{ customer.first_name }}: up to 50% off</div>
<table width="100%" cellpadding="0" cellspacing="0">
<tr><td><h1>Hello {{ customer.first_name }} {{ customer.last_name }}!</h1>
<p>As a customer from {{ customer.attributes.city }} you get free delivery this week.
{% if customer.attributes.vip %}As a VIP you also get early access.{% endif %}</p></td></tr>
"""
    + "".join(PRODUCT.format(n=n) for n in range(1, 3))
    + """
<tr><td class="footer"><p>You receive this because you are a customer of Shop, sent to
{{ customer.email }}. <a href="https://shop.example/account">Your account</a> &middot;
<a href="{{ unsubscribe_url }}">Unsubscribe</a></p></td></tr>
</table>
</body></html>"""
)

CONTEXT = {
    "customer": {
        "id": 123456,
        "email": "anna.svensson@example.com",
        "first_name": "Anna",
        "last_name": "Svensson",
        "attributes": {"city": "Göteborg", "vip": True},
    },
    "unsubscribe_url": f"{BASE}/u/{sign_message_token(SECRET, 987654321, 'unsub')}",
    "mailing": {"id": 42, "name": "Spring sale"},
}


def per_message(stmt: object, number: int) -> float:
    return min(timeit.repeat(stmt, number=number, repeat=5)) / number * 1e6  # type: ignore[arg-type]


def main() -> None:
    subject = "{{ customer.first_name }}, spring is here"
    compiled = compile_email(subject=subject, html=HTML, text=None)
    html_size = len(compiled.html_source.encode())
    factory = MessageFactory(
        from_email="news@shop.example", from_name="Shop", reply_to=None, mailing_id=42
    )
    mid = 987654321

    def link(url: str) -> str:
        return f"{BASE}/t/c/{sign_click(SECRET, mid, merge_utm(url, UTM))}"

    pixel = f"{BASE}/t/o/{sign_message_token(SECRET, mid, 'open')}"
    plain = compiled.render(CONTEXT)
    tracked = compiled.render(CONTEXT, link=link, open_pixel_url=pixel)

    def build() -> bytes:
        return factory.build(
            message_id_header=f"<tidings.42.{mid}@shop.example>",
            to="anna.svensson@example.com",
            subject=tracked.subject,
            html=tracked.html,
            text=tracked.text,
            list_unsubscribe=CONTEXT["unsubscribe_url"],  # type: ignore[arg-type]
        )

    def everything() -> bytes:
        r = compiled.render(CONTEXT, link=link, open_pixel_url=pixel)
        return factory.build(
            message_id_header=f"<tidings.42.{mid}@shop.example>",
            to="anna.svensson@example.com",
            subject=r.subject,
            html=r.html,
            text=r.text,
            list_unsubscribe=CONTEXT["unsubscribe_url"],  # type: ignore[arg-type]
        )

    n = 2000
    render = per_message(lambda: compiled.render(CONTEXT), n)
    tracked_render = per_message(
        lambda: compiled.render(CONTEXT, link=link, open_pixel_url=pixel), n
    )
    links = tracked_render - render
    build_us = per_message(build, n)
    total = per_message(everything, n)
    size = len(build())
    print(f"template: {html_size} bytes of HTML after inlining, {len(plain.text)} chars of text")
    print(f"render (subject + html + derived text): {render:7.1f} us/message")
    print(f"link rewrite (6 links, sign + UTM) + pixel: {links:7.1f} us/message")
    print(f"MIME build ({size} bytes):            {build_us:7.1f} us/message")
    print(
        f"all three together:                   {total:7.1f} us/message "
        f"= {1e6 / total:,.0f} messages/s per core"
    )


if __name__ == "__main__":
    main()
