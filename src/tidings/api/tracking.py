"""The public pages that the tracking links of a message lead to: no login, at
the root, not in the OpenAPI document. Each takes a signed token
(:mod:`tidings.domain.tracking`); a tampered or foreign one never counts.

- ``GET /t/o/{token}``: the open pixel, a 1x1 transparent GIF, never cached.
- ``GET /t/c/{token}``: a click; ``302`` to the link with the mailing's UTM
  tags. A tampered or foreign token gets a ``404`` page and never a redirect.
- ``GET /s/{token}``: a short link of an SMS; a click as above, or (link 0)
  a ``302`` to the message's unsubscribe page.
- ``GET /u/{token}``: a page naming the shop and the (masked) address,
  asking to confirm, with a POST form.
- ``POST /u/{token}``: unsubscribes at once; this is also the RFC 8058
  one-click target of ``List-Unsubscribe`` (a POST with the body
  ``List-Unsubscribe=One-Click``, no cookies), answered ``200``. The page
  offers "Subscribe again" for a mistake.
- ``POST /u/{token}/resubscribe``: undoes the unsubscribe.
- ``GET``/``POST /u/{token}/preferences``: the customer's choice per channel.
- ``GET /shop/logo``: the shop's logo, which those pages show.

``HEAD`` on the tracking URLs is answered but never counted (see
:mod:`tidings.domain.engagement` on machine opens). The pages are plain HTML
without scripts, cookies or outside resources (the logo is served here), and
are not indexed. Their links are relative, so they work behind any proxy or
path prefix.
"""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

import jinja2
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from starlette.concurrency import run_in_threadpool

from tidings.api.dependencies import Ctx
from tidings.domain.preferences import CHANNELS
from tidings.errors import InvalidInput
from tidings.services import preferences, shop, tracking

#: The smallest transparent GIF: 1x1, one transparent colour.
PIXEL = (b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\x00\x00\x00!\xf9\x04\x01\x00\x00\x00"
         b"\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;")
NO_CACHE = {"Cache-Control": "no-store, no-cache, must-revalidate, max-age=0, private",
            "Pragma": "no-cache", "Expires": "0"}
PAGE_HEADERS = {**NO_CACHE, "X-Robots-Tag": "noindex, nofollow", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                           "img-src 'self'; form-action 'self'"}
PAGES = jinja2.Environment(loader=jinja2.FileSystemLoader(Path(__file__).with_name("pages")),
                           autoescape=True, undefined=jinja2.StrictUndefined)


router = APIRouter(include_in_schema=False)


def page(title: str, body: str, *, status_code: int = 200) -> HTMLResponse:
    """A minimal, self-contained HTML page (``body`` is trusted markup)."""
    text = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{html.escape(title)}</title>
<style>body{{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;
color:#222}}button{{font:inherit;padding:.5rem 1.25rem;cursor:pointer}}</style></head>
<body><h1>{html.escape(title)}</h1>
{body}
</body></html>
"""
    return HTMLResponse(text, status_code=status_code, headers=PAGE_HEADERS)


def not_found_page() -> HTMLResponse:
    return page("This link is not valid",
                "<p>The address is incomplete or has been changed. Please use the link exactly "
                "as it appears in the message.</p>", status_code=404)


@router.api_route("/t/o/{token}", methods=["GET", "HEAD"])
def open_pixel(request: Request, ctx: Ctx, token: str) -> Response:
    status = 200
    try:
        tracking.record_open(ctx, token, method=request.method,
                               user_agent=request.headers.get("user-agent"))
    except InvalidInput:
        status = 404  # still an image, so a mail client shows nothing broken
    return Response(PIXEL, status_code=status, media_type="image/gif", headers=NO_CACHE)


@router.api_route("/t/c/{token}", methods=["GET", "HEAD"])
def click(request: Request, ctx: Ctx, token: str) -> Response:
    try:
        target = tracking.record_click(ctx, token, method=request.method,
                                         user_agent=request.headers.get("user-agent"))
    except InvalidInput:
        return not_found_page()
    return RedirectResponse(target, status_code=302, headers=NO_CACHE)


@router.api_route("/s/{token}", methods=["GET", "HEAD"])
def short_link(request: Request, ctx: Ctx, token: str) -> Response:
    try:
        target = tracking.follow_short(ctx, token, method=request.method,
                                       user_agent=request.headers.get("user-agent"))
    except InvalidInput:
        return not_found_page()
    return RedirectResponse(target, status_code=302, headers=NO_CACHE)


def _shop_page(template: str, title: str, **context: Any) -> HTMLResponse:
    view = context["view"]
    text = PAGES.get_template(template).render(title=title, shop=view["shop"],
                                               shop_name=view["shop_name"], **context)
    return HTMLResponse(text, headers=PAGE_HEADERS)


@router.get("/u/{token}")
def unsubscribe_page(ctx: Ctx, token: str) -> Response:
    try:
        view = preferences.page(ctx, token)
    except InvalidInput:
        return not_found_page()
    this = view["this"]
    if this is not None and not this["subscribed"]:
        return _shop_page("unsubscribe.html", "You are unsubscribed", view=view, state="already",
                          base=token)
    return _shop_page("unsubscribe.html", "Unsubscribe", view=view, state="ask", base=token)


@router.post("/u/{token}")
def unsubscribe(ctx: Ctx, token: str) -> Response:
    # The body is not read: RFC 8058 mandates List-Unsubscribe=One-Click, but a
    # person's form, a mail provider's POST and a bare POST all mean the same.
    try:
        view = preferences.unsubscribe(ctx, token)
    except InvalidInput:
        return not_found_page()
    return _shop_page("unsubscribe.html", "You are unsubscribed", view=view, state="done",
                      base=token)


@router.post("/u/{token}/resubscribe")
def resubscribe(ctx: Ctx, token: str) -> Response:
    try:
        view = preferences.resubscribe(ctx, token)
    except InvalidInput:
        return not_found_page()
    this = view["this"]
    title = "You are subscribed again" if this and this["subscribed"] else "Subscribe again"
    return _shop_page("unsubscribe.html", title, view=view, state="resubscribed", base=".")


@router.get("/u/{token}/preferences")
def preferences_page(ctx: Ctx, token: str) -> Response:
    try:
        view = preferences.page(ctx, token)
    except InvalidInput:
        return not_found_page()
    return _shop_page("preferences.html", "Your choices", view=view, saved=False, base=".")


@router.post("/u/{token}/preferences")
async def save_preferences(request: Request, ctx: Ctx, token: str) -> Response:
    form = await request.form()
    wanted = {channel: form.get(channel) == "yes" for channel in CHANNELS}
    try:
        view = await run_in_threadpool(preferences.save, ctx, token, wanted)
    except InvalidInput:
        return not_found_page()
    return _shop_page("preferences.html", "Your choices", view=view, saved=True, base=".")


@router.get("/shop/logo")
def logo(ctx: Ctx) -> Response:
    found = shop.logo(ctx)
    if found is None:
        return Response(status_code=404, headers=NO_CACHE)
    data, media_type = found
    return Response(data, media_type=media_type, headers={
        "Cache-Control": "public, max-age=86400", "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'"})
