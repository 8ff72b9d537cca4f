"""The admins' People and tokens page: people who sign in (add, change role,
reset password, remove), API tokens (create, revoke), and the test addresses;
and the Audit log page. Every change asks for a confirmation first and goes
to the audit log under the admin's email."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.domain.actors import Actor
from tidings.errors import TidingsError
from tidings.services import audit, test_addresses, tokens, users
from tidings.services.context import Context
from tidings.web.routing import Admin, Form, field_errors, flash, redirect, render
from tidings.web.wording import say

PAGE = "/admin/people"
AUDIT_PAGE_SIZE = 50


def add_routes(r: APIRouter, ctx: Context) -> None:
    def people(request: Request, actor: Actor, *, status: int = 200, errors: dict[str, str] | None = None,
               values: dict[str, str] | None = None, token: dict[str, str] | None = None,
               reset: dict[str, Any] | None = None) -> Response:
        return render(request, "people.html", status_code=status, errors=errors or {},
                      values=values or {}, token=token, reset=reset, users=users.list_users(ctx),
                      tokens=tokens.list_tokens(ctx), test_addresses=test_addresses.list_addresses(ctx),
                      mails_links=not ctx.settings.smtp_url.startswith("file://"), me=actor.user_id)

    def done(request: Request, actor: Actor, user_id: int, message: str) -> Response:
        """Back to the page, or to sign-in when the admin changed themselves (their session ended)."""
        flash(request, message)
        return redirect("/sign-in" if user_id == actor.user_id else PAGE)

    @r.get(PAGE)
    def people_page(request: Request, actor: Admin) -> Response:
        return people(request, actor)

    @r.post(PAGE)
    def create_person(request: Request, actor: Admin, form: Form) -> Response:
        values = {k: str(form.get(k, "")) for k in ("email", "password", "role")}
        try:
            users.create_user(ctx, email=values["email"], password=values["password"],
                              role=values["role"] or "manager", actor=actor)
        except TidingsError as exc:
            return people(request, actor, status=exc.status, errors=field_errors(exc),
                          values=values | {"password": ""})
        flash(request, f"{values['email'].strip().lower()} can now sign in as {values['role']}.")
        return redirect(PAGE)

    @r.post(PAGE + "/{user_id}/role")
    def change_role(request: Request, actor: Admin, user_id: int, form: Form) -> Response:
        role = str(form.get("role", ""))
        try:
            user = users.change_role(ctx, user_id, role=role, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(PAGE)
        now = "an admin" if role == "admin" else "a manager"
        return done(request, actor, user_id,
                    f"{user['email']} is now {now}; they sign in again to continue.")

    @r.post(PAGE + "/{user_id}/remove")
    def remove(request: Request, actor: Admin, user_id: int) -> Response:
        try:
            email = users.get_user(ctx, user_id)["email"]
            users.remove_user(ctx, user_id, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(PAGE)
        return done(request, actor, user_id, f"{email} is removed and can no longer sign in.")

    @r.post(PAGE + "/{user_id}/reset")
    def reset(request: Request, actor: Admin, user_id: int) -> Response:
        try:
            result = users.reset_password(ctx, user_id=user_id, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(PAGE)
        if result["mailed"]:
            return done(request, actor, user_id, f"{result['email']} is signed out; a link to choose a "
                        "new password is on its way to them.")
        return people(request, actor, reset=result)

    @r.post("/admin/tokens")
    def create_token(request: Request, actor: Admin, form: Form) -> Response:
        name, role = str(form.get("name", "")).strip(), str(form.get("role", "manager"))
        if not name:
            message = "Give the token a name, e.g. the shop's export job."
            return people(request, actor, status=422, values={"token_name": name},
                          errors={"token_name": message})
        try:
            token = tokens.create_token(ctx, name=name, role=role, actor=actor)
        except TidingsError as exc:
            return people(request, actor, status=exc.status, errors=field_errors(exc),
                          values={"token_name": name})
        return people(request, actor, token={"name": name, "role": role, "value": token})

    @r.post("/admin/tokens/{token_id}/revoke")
    def revoke_token(request: Request, actor: Admin, token_id: int) -> Response:
        try:
            tokens.revoke_token(ctx, token_id, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
        else:
            flash(request, "The token is revoked: requests with it are now refused.")
        return redirect(PAGE)

    @r.post("/admin/test-addresses")
    def add_test_address(request: Request, actor: Admin, form: Form) -> Response:
        address = str(form.get("address", ""))
        try:
            added = test_addresses.add_address(ctx, address, actor=actor)
        except TidingsError as exc:
            return people(request, actor, status=exc.status, values={"test_address": address},
                          errors={"test_address": say(exc)})
        flash(request, f"Test messages may now go to {added['address']}.")
        return redirect(PAGE)

    @r.post("/admin/test-addresses/{entry_id}/remove")
    def remove_test_address(request: Request, actor: Admin, entry_id: int) -> Response:
        try:
            test_addresses.remove_address(ctx, entry_id, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
        else:
            flash(request, "The address is off the list: test messages no longer go to it.")
        return redirect(PAGE)

    @r.get("/admin/audit")
    def audit_page(request: Request, actor: Admin, before: int | None = None) -> Response:
        found = audit.entries(ctx, actor=actor, limit=AUDIT_PAGE_SIZE, before=before)
        return render(request, "audit.html", entries=found["entries"], next_before=found["next_before"],
                      first_page=before is None)
