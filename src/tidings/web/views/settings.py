"""Settings (admins): the shop's name, default sender, postal address and logo,
shown on the pages customers see and used as the sender of new mailings."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import UploadFile

from tidings.domain.shop import FIELDS, Shop
from tidings.errors import TidingsError
from tidings.services import shop
from tidings.services.context import Context
from tidings.web.routing import Admin, Form, field_errors, flash, redirect, render


def add_routes(r: APIRouter, ctx: Context) -> None:
    def page(request: Request, *, current: Shop, values: dict[str, str] | None = None,
             errors: dict[str, str] | None = None, status: int = 200) -> Response:
        shown = values if values is not None else {f: getattr(current, f) or "" for f in FIELDS}
        sender = shop.default_sender(ctx)
        return render(request, "settings.html", status_code=status, shop=current, values=shown,
                      errors=errors or {}, sender=sender,
                      fallback_email=ctx.settings.default_from_email)

    @r.get("/settings")
    def settings_page(request: Request, actor: Admin) -> Response:
        return page(request, current=shop.get_shop(ctx))

    @r.post("/settings")
    def save(request: Request, actor: Admin, form: Form) -> Response:
        values = {f: str(form.get(f, "")) for f in FIELDS}
        upload = form.get("logo")
        try:
            shop.update_shop(ctx, values, actor=actor)
            if isinstance(upload, UploadFile) and upload.filename:
                shop.set_logo(ctx, upload.file.read(), actor=actor)
            elif form.get("remove_logo"):
                shop.remove_logo(ctx, actor=actor)
        except TidingsError as exc:
            return page(request, current=shop.get_shop(ctx), values=values,
                        errors=field_errors(exc), status=exc.status)
        flash(request, "Settings saved.")
        return redirect("/settings")
