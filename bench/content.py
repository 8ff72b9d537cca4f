"""Microseconds per message on the content hot path: render, link rewrite, MIME build.

Run: ``.venv/bin/python bench/content.py``. A 4 KB newsletter with a
``<style>`` block, personal fields, a condition and five tracked links plus
the unsubscribe link, compiled once as a mailing is; the text part is derived
from the HTML. Links are signed as the worker signs them (:func:`click_signer`
after :func:`merge_utm`); links written in the template are filled in by
Jinja, and the cost of searching the output for every link instead is printed
beside. Each figure is the best of seven ``timeit`` runs divided by the loop
count; "link rewrite" is render-with-tracking minus plain render.
"""

from __future__ import annotations

import time
import timeit
from collections.abc import Callable

from tidings.domain.templates import compile_email, merge_utm
from tidings.domain.tracking import click_signer, sign_message_token
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
       {{{{ customer.first_name }}}}. Sizes S to XL, colours sand, moss and sea. Woven from
       organic cotton in a small mill that has made cloth the same way for three generations,
       it keeps its shape wash after wash and feels softer every time you wear it.</p>
    <p>Free returns within 60 days, repairs for life, and delivery to {{{{ customer.attributes.city }}}}
       in two working days. Order before Friday to have it for the weekend.</p>
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
{% if customer.attributes.vip %}As a VIP you also get early access.{% endif %}</p>
<p>Spring is here and so is our new collection: clothes for long walks, cool mornings and
warm afternoons, made from materials that last. We picked two favourites for you below,
based on what you bought from us before. Thank you for shopping with us, and enjoy the sun.</p>
</td></tr>
"""
    + "".join(PRODUCT.format(n=n) for n in range(1, 3))
    + """
<tr><td><p>Not sure about your size? Our fit guide compares every piece with the ones you
already own, and our team in {{ customer.attributes.city }} answers questions by mail within a
day. We also take back worn clothes from any brand and give you a voucher for each bag.</p>
<p>This week only: bring this mail to any of our stores and get a free repair kit with
every purchase over 50 euros. Members also collect double points on everything from the
spring collection until the end of the month, online and in stores.</p>
<p>See you soon, {{ customer.first_name }}. The Shop team.</p></td></tr>
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


def per_message(stmt: Callable[[], object], number: int) -> float:
    """Best of seven timeit runs, in microseconds of CPU time per call (CPU time, so
    that other processes on a busy machine do not count)."""
    timer = timeit.Timer(stmt, timer=time.process_time)
    return min(timer.repeat(number=number, repeat=7)) / number * 1e6


def main() -> None:
    subject = "{{ customer.first_name }}, spring is here"
    compiled = compile_email(subject=subject, html=HTML, text=None)
    factory = MessageFactory(from_email="news@shop.example", from_name="Shop", reply_to=None, mailing_id=42)
    mid = 987654321
    unsubscribe = CONTEXT["unsubscribe_url"]
    assert isinstance(unsubscribe, str)

    signed: set[str] = set()
    prefix = f"{BASE}/t/c/"

    def link(url: str) -> str:  # as the worker signs: the message's id and key prepared once
        signed.add(url)
        return prefix + sign(merge_utm(url, UTM))

    sign = click_signer(SECRET, mid)
    pixel = f"{BASE}/t/o/{sign_message_token(SECRET, mid, 'open')}"
    tracked = compiled.render(CONTEXT, link=link, link_prefix=prefix, open_pixel_url=pixel)
    links = len(signed)
    assert tracked == compiled.render(CONTEXT, link=link, open_pixel_url=pixel)  # searching: the same

    def build() -> bytes:
        return factory.build(
            message_id_header=f"<tidings.42.{mid}@shop.example>",
            to="anna.svensson@example.com",
            subject=tracked.subject,
            html=tracked.html,
            text=tracked.text,
            list_unsubscribe=unsubscribe,
        )

    def everything() -> bytes:
        rendered = compiled.render(CONTEXT, link=link, link_prefix=prefix, open_pixel_url=pixel)
        return factory.build(
            message_id_header=f"<tidings.42.{mid}@shop.example>",
            to="anna.svensson@example.com",
            subject=rendered.subject,
            html=rendered.html,
            text=rendered.text,
            list_unsubscribe=unsubscribe,
        )

    n = 2000
    calibration = per_message(lambda: sum(range(1000)), n)
    render = per_message(lambda: compiled.render(CONTEXT), n)
    with_tracking = per_message(
        lambda: compiled.render(CONTEXT, link=link, link_prefix=prefix, open_pixel_url=pixel), n
    )
    searching = per_message(lambda: compiled.render(CONTEXT, link=link, open_pixel_url=pixel), n)
    build_us = per_message(build, n)
    total = per_message(everything, n)
    print(
        f"template: {len(HTML.encode())} bytes of HTML source, {links} distinct tracked links "
        f"+ unsubscribe, derived text {len(tracked.text)} chars, message {len(build())} bytes"
    )
    print(f"render (subject + html + text)        {render:7.1f} us/message")
    print(f"link rewrite + open pixel             {with_tracking - render:7.1f} us/message")
    print(f"  (searching the output for every link {searching - render:7.1f} us/message)")
    print(f"MIME build (base64 bodies)            {build_us:7.1f} us/message")
    print(
        f"all together                          {total:7.1f} us/message "
        f"= {1e6 / total:,.0f} messages/s per core"
    )
    print(
        f"(this machine: sum(range(1000)) takes {calibration:.1f} us; about 8 us on a current desktop core)"
    )


if __name__ == "__main__":
    main()
