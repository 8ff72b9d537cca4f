"""Sign-in, sign-out, and the admins' pages for people and API tokens."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import TidingsError, Unauthorized
from tidings.services import tokens, users
from tidings.services.context import Context
from tidings.web.routing import (
    Admin,
    Form,
    field_errors,
    flash,
    redirect,
    render,
    session_of,
    set_session,
)
from tidings.web.session import Session
from tidings.web.wording import say


def _safe_next(target: str | None) -> str:
    """Only a path on this site, so a crafted link cannot send people elsewhere."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/mailings"


def add_routes(r: APIRouter, ctx: Context) -> None:
    @r.get("/")
    def home(request: Request) -> Response:
        return redirect("/mailings" if session_of(request).actor else "/sign-in")

    @r.get("/sign-in")
    def sign_in_page(request: Request, next: str | None = None) -> Response:
        if session_of(request).actor:
            return redirect(_safe_next(next))
        return render(request, "sign_in.html", next=next or "", email="", errors={})

    @r.post("/sign-in")
    def sign_in(request: Request, form: Form) -> Response:
        email, password = str(form.get("email", "")), str(form.get("password", ""))
        next_ = str(form.get("next", ""))
        try:
            actor = users.sign_in(ctx, email=email, password=password)
        except Unauthorized as exc:
            return render(request, "sign_in.html", status_code=401, next=next_, email=email,
                          errors={"_": say(exc)})
        set_session(request, session_of(request).signed_in(email=actor.name, role=actor.role))
        return redirect(_safe_next(next_))

    @r.post("/sign-out")
    def sign_out(request: Request) -> Response:
        set_session(request, Session())
        flash(request, "You are signed out.")
        return redirect("/sign-in")

    def people(request: Request, *, status: int = 200, errors: dict[str, str] | None = None,
               values: dict[str, str] | None = None, token: dict[str, str] | None = None) -> Response:
        return render(request, "people.html", status_code=status, errors=errors or {},
                      values=values or {}, token=token, users=users.list_users(ctx),
                      tokens=tokens.list_tokens(ctx))

    @r.get("/admin/people")
    def people_page(request: Request, actor: Admin) -> Response:
        return people(request)

    @r.post("/admin/people")
    def create_person(request: Request, actor: Admin, form: Form) -> Response:
        values = {k: str(form.get(k, "")) for k in ("email", "password", "role")}
        try:
            users.create_user(ctx, email=values["email"], password=values["password"],
                             role=values["role"] or "manager")
        except TidingsError as exc:
            return people(request, status=exc.status, errors=field_errors(exc),
                          values=values | {"password": ""})
        flash(request, f"{values['email'].strip().lower()} can now sign in as {values['role']}.")
        return redirect("/admin/people")

    @r.post("/admin/tokens")
    def create_token(request: Request, actor: Admin, form: Form) -> Response:
        name, role = str(form.get("name", "")).strip(), str(form.get("role", "manager"))
        if not name:
            message = "Give the token a name, e.g. the shop's export job."
            return people(request, status=422, values={"token_name": name},
                          errors={"token_name": message})
        try:
            token = tokens.create_token(ctx, name=name, role=role)
        except TidingsError as exc:
            return people(request, status=exc.status, errors=field_errors(exc),
                          values={"token_name": name})
        return people(request, token={"name": name, "role": role, "value": token})

    @r.post("/admin/tokens/{token_id}/revoke")
    def revoke_token(request: Request, actor: Admin, token_id: int) -> Response:
        try:
            tokens.revoke_token(ctx, token_id)
        except TidingsError as exc:
            flash(request, say(exc), "error")
        else:
            flash(request, "The token is revoked: requests with it are now refused.")
        return redirect("/admin/people")
