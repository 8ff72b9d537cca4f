"""Sign-in, sign-out, and the page where a reset link leads to choose a new password.

Sign-in starts a server-side session (:mod:`tidings.services.sessions`) and
puts its token in the cookie with a fresh CSRF token; sign-out deletes it. A
wrong password says so; too many for one address lock it for a while and say
for how long (:func:`tidings.services.users.sign_in`); too many failures from
one network are refused before they reach the password check
(:mod:`tidings.api.rate_limits`).
"""

from __future__ import annotations

import math

from fastapi import APIRouter, Request
from fastapi.responses import Response

from tidings.errors import RateLimited, TidingsError, Unauthorized
from tidings.services import sessions as server_sessions
from tidings.services import users
from tidings.services.context import Context
from tidings.web.routing import Form, field_errors, flash, redirect, render, session_of, set_session
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
        email, password = str(form.get("email", ""))[:320], str(form.get("password", ""))[:1024]
        next_ = str(form.get("next", ""))
        try:
            actor = users.sign_in(ctx, email=email, password=password)
        except (Unauthorized, RateLimited) as exc:
            response = render(request, "sign_in.html", status_code=exc.status, next=next_,
                              email=email, errors={"_": say(exc)})
            if isinstance(exc, RateLimited):
                response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
            return response
        assert actor.user_id is not None
        current = session_of(request)
        server_sessions.end(ctx, current.token)  # one browser, one session
        token = server_sessions.start(ctx, user_id=actor.user_id)
        set_session(request, current.signed_in(token=token, email=actor.name, role=actor.role,
                                               user_id=actor.user_id))
        return redirect(_safe_next(next_))

    @r.post("/sign-out")
    def sign_out(request: Request) -> Response:
        server_sessions.end(ctx, session_of(request).token)
        set_session(request, Session())
        flash(request, "You are signed out.")
        return redirect("/sign-in")

    @r.get("/reset/{token}")
    def reset_page(request: Request, token: str) -> Response:
        try:
            email = users.reset_link_email(ctx, token)
        except TidingsError as exc:
            return render(request, "error.html", status_code=exc.status, title="This link does not work",
                          message=say(exc))
        return render(request, "reset.html", email=email, errors={})

    @r.post("/reset/{token}")
    def choose_password(request: Request, token: str, form: Form) -> Response:
        password, again = str(form.get("password", "")), str(form.get("password_again", ""))
        try:
            email = users.reset_link_email(ctx, token)
        except TidingsError as exc:
            return render(request, "error.html", status_code=exc.status, title="This link does not work",
                          message=say(exc))
        if password != again:
            return render(request, "reset.html", status_code=422, email=email,
                          errors={"password_again": "The two passwords differ: type the same twice."})
        try:
            users.choose_password(ctx, token, password=password)
        except TidingsError as exc:
            return render(request, "reset.html", status_code=exc.status, email=email,
                          errors=field_errors(exc))
        server_sessions.end(ctx, session_of(request).token)
        set_session(request, Session())
        flash(request, f"Your new password is set: sign in with {email} and it.")
        return redirect("/sign-in")
