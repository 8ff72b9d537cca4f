"""Quota: the balance per channel, and the top-up for admins."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import TidingsError
from tidings.services import quotas
from tidings.services.context import Context
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render


def add_routes(r: APIRouter, ctx: Context) -> None:
    def page(request: Request, *, errors: dict[str, str], values: dict[str, str],
             status: int = 200) -> Response:
        return render(request, "quota.html", status_code=status, quota=quotas.get_quota(ctx),
                      errors=errors, values=values)

    @r.get("/quota")
    def quota_page(request: Request, actor: Who) -> Response:
        return page(request, errors={}, values={"channel": "email"})

    @r.post("/quota/topup")
    def topup(request: Request, actor: Who, form: Form) -> Response:
        values = {"channel": str(form.get("channel", "")), "amount": str(form.get("amount", ""))}
        text = values["amount"].strip().replace(",", "").replace(" ", "")
        try:
            quotas.topup(ctx, channel=values["channel"], actor=actor,
                          amount=int(text) if text.isascii() and text.isdigit() and len(text) <= 30
                          else text)
        except TidingsError as exc:
            return page(request, errors=field_errors(exc), values=values, status=exc.status)
        flash(request, f"Added {int(text):,} {values['channel']} messages to the quota.")
        return redirect("/quota")
