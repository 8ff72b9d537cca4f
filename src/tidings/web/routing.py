"""The plumbing every page shares: session loading, CSRF, rendering and errors.

:func:`route_class` makes the :class:`~fastapi.routing.APIRoute` subclass used
by every web route. Around each handler it loads the signed session cookie and
the server-side session its token names (:func:`tidings.services.sessions.resolve`:
a cookie whose session ended, or whose person is gone, is signed out), refuses a
POST without the session's CSRF token, turns :class:`SignInRequired` into a
redirect to the sign-in page, any other :class:`TidingsError` and a path or
query parameter FastAPI cannot parse into an HTML error page (the API's JSON
error handlers never see a web route's error), and writes the session cookie
back when it changed: HttpOnly, SameSite=Lax, and Secure when the request came
over https (:func:`tidings.web.security.is_https`). Security headers are set
on every response by :class:`tidings.web.security.SecurityHeaders`.

The same route class is the web UI's catch-all: an integer in the address
beyond 64 bits is a 404 page (or a 422 page for a query parameter) before any
handler runs, a form field with a NUL character or a lone surrogate is a 422
page naming the field, a value the database refuses is a 422 page, and any
other exception is a 500 page with a reference that is logged with the
traceback: never a bare "Internal Server Error".
"""

from __future__ import annotations

import math
from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote

import sqlalchemy as sa
from fastapi import Depends, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.requests import ClientDisconnect

from tidings import __version__
from tidings.api.errors import log_internal
from tidings.domain.actors import Actor
from tidings.errors import Forbidden, InvalidInput, RateLimited, TemplateSyntaxError, TidingsError
from tidings.services import sessions as server_sessions
from tidings.services.context import Context
from tidings.web import session as sessions
from tidings.web.security import is_https
from tidings.web.session import Session
from tidings.web.wording import say

HERE = Path(__file__).parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))


class SignInRequired(Exception):
    """The page needs a signed-in person."""


class CsrfFailed(Exception):
    """A POST without the session's CSRF token."""


def _when(value: str | datetime | None) -> Markup:
    """A moment as ``<time>`` showing UTC; ``tidings.js`` shows it in the
    browser's time zone (the manager's), keeping the UTC time as its title."""
    if not value:
        return Markup("")
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    moment = (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).astimezone(UTC)
    return Markup('<time datetime="{}" data-local-time>{}</time>').format(
        moment.strftime("%Y-%m-%dT%H:%M:%SZ"), moment.strftime("%Y-%m-%d %H:%M UTC"))


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float) and not value.is_integer():
        return f"{value:,.1f}"
    return f"{int(value):,}"


def _options(items: list[dict[str, Any]], *, blank: str | None = None,
             channel: str | None = None) -> list[tuple[Any, str]]:
    """``(id, label)`` pairs for a select of segments or templates (of one channel)."""
    pairs = [(item["id"], item["name"] + (f" ({item['channel']})" if "channel" in item else ""))
             for item in items if channel is None or item.get("channel") in (None, channel)]
    return ([("", blank)] if blank is not None else []) + pairs


TEMPLATES.env.filters["when"] = _when
TEMPLATES.env.globals["options"] = _options
TEMPLATES.env.filters["number"] = _number
TEMPLATES.env.globals["static"] = lambda name: f"/static/{name}?v={__version__}"


# -- the session and who is signed in -------------------------------------------------


def session_of(request: Request) -> Session:
    return request.state.session  # type: ignore[no-any-return]


def set_session(request: Request, session: Session) -> None:
    request.state.session = session


def flash(request: Request, message: str, kind: str = "ok") -> None:
    """A message shown once, on the next page rendered."""
    set_session(request, session_of(request).with_flash(kind, message))


def _signed_in(request: Request) -> Actor:
    actor = session_of(request).actor
    if actor is None:
        raise SignInRequired()
    return actor


# Coroutines, so FastAPI runs them on the event loop, not each in a thread of its
# own (the session was resolved before the route, by ``WebRoute``).
async def signed_in(request: Request) -> Actor:
    return _signed_in(request)


async def admin(request: Request) -> Actor:
    actor = _signed_in(request)
    if not actor.is_admin:
        raise Forbidden("Only an admin may see this page.")
    return actor


async def form_data(request: Request) -> FormData:
    """The form of a POST; refuses (``InvalidInput`` naming the field) a value
    with a NUL character or a lone surrogate, which no database column holds."""
    form = await request.form()
    for key, value in form.multi_items():
        if isinstance(value, str) and ("\x00" in value or _has_lone_surrogate(value)):
            raise InvalidInput(f"The field {key} contains a character that is not text (NUL or a "
                               "lone surrogate); remove it and try again.", field=key)
    return form


def _has_lone_surrogate(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


Who = Annotated[Actor, Depends(signed_in)]
Admin = Annotated[Actor, Depends(admin)]
Form = Annotated[FormData, Depends(form_data)]


# -- responses -------------------------------------------------------------------------


def render(request: Request, template: str, /, *, status_code: int = 200, fragment: bool = False,
           **context: Any) -> HTMLResponse:
    """Render ``template``; a full page shows (and uses up) the pending flash messages."""
    current = session_of(request)
    messages = () if fragment else current.flash
    if messages:
        set_session(request, current.without_flash())
    response = TEMPLATES.TemplateResponse(
        request, template, {"actor": current.actor, "csrf": current.csrf, "flashes": messages,
                        "path": request.url.path, **context},
        status_code=status_code,
    )
    response.headers["Cache-Control"] = "no-store"
    return response


def redirect(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


def field_errors(exc: TidingsError) -> dict[str, str]:
    """``{field: message}`` to show next to the field, or ``{"_": message}`` for the form;
    the message in the manager's words (:func:`~tidings.web.wording.say`)."""
    message = say(exc)
    if isinstance(exc, TemplateSyntaxError) and exc.line and f"line {exc.line}" not in message:
        message = f"Line {exc.line}: {message}"
    if isinstance(exc, InvalidInput) and exc.field:
        return {exc.field: message}
    return {"_": message}


def _to_sign_in(request: Request) -> Response:
    target = "/sign-in"
    if request.method == "GET" and request.url.path not in ("/", "/sign-in"):
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        target += "?next=" + quote(path, safe="")
    if request.headers.get("hx-request"):
        return Response(status_code=204, headers={"HX-Redirect": target})
    return redirect(target)


def _error_page(request: Request, exc: TidingsError) -> Response:
    title = {404: "Not found", 403: "Not allowed", 429: "Too many attempts"}.get(
        exc.status, "Something is wrong")
    response = render(request, "error.html", status_code=exc.status, message=say(exc), title=title)
    if isinstance(exc, RateLimited):
        response.headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
    return response


def _bad_request_page(request: Request, exc: RequestValidationError) -> Response:
    """A page address or query FastAPI could not read (``/mailings/abc``): an HTML
    page, where the API would answer with its JSON envelope. A bad part of the
    path means there is no such page (404)."""
    errors = exc.errors()
    if any(tuple(e.get("loc", ()))[:1] == ("path",) for e in errors):
        return render(request, "error.html", status_code=404, title="Not found",
                      message="There is no such page. Check the address, or follow a link "
                              "from the menu.")
    where = ".".join(str(part) for part in tuple(errors[0].get("loc", ()))[1:]) if errors else ""
    return render(request, "error.html", status_code=422, title="Something is wrong",
                  message=f"The address has a value this page cannot use{f' ({where})' if where else ''}.")


async def _check_csrf(request: Request, current: Session) -> None:
    token = request.headers.get(sessions.CSRF_HEADER)
    if token is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")):
        value = (await request.form()).get(sessions.CSRF_FIELD)
        token = value if isinstance(value, str) else None
    if not current.csrf_ok(token):
        raise CsrfFailed()


async def _load_session(ctx: Context, request: Request, secret: bytes) -> tuple[Session | None, Session]:
    """The session as the cookie has it (None without a valid cookie), and as it
    stands: signed in as the person its token names while that session is valid."""
    loaded = sessions.load(request.cookies.get(sessions.cookie_name(secret)), secret)
    current = loaded or Session()
    if current.token is not None:
        person = await run_in_threadpool(server_sessions.resolve, ctx, current.token)
        current = (current.as_person(email=person.email, role=person.role, user_id=person.user_id)
                   if person else current.signed_out())
    return loaded, current


#: Integers a page address may hold: what the database's 64-bit ids hold.
_INT64 = 2**63


def _int_params(route: APIRoute) -> tuple[set[str], set[str]]:
    """The names of the route's integer path and query parameters."""
    def ints(params: Any) -> set[str]:
        return {p.name for p in params
                if getattr(p.field_info, "annotation", None) in (int, int | None)}
    return ints(route.dependant.path_params), ints(route.dependant.query_params)


def _out_of_range(value: str) -> bool:
    text = value.strip().removeprefix("-").removeprefix("+")
    return text.isascii() and text.isdigit() and (len(text) > 19 or int(text) >= _INT64)


def _address_out_of_range(request: Request, ints: tuple[set[str], set[str]]) -> Response | None:
    path_ints, query_ints = ints
    if any(_out_of_range(str(request.path_params.get(name, ""))) for name in path_ints):
        return render(request, "error.html", status_code=404, title="Not found",
                      message="There is no such page. Check the address, or follow a link "
                              "from the menu.")
    for name in query_ints:
        if any(_out_of_range(value) for value in request.query_params.getlist(name)):
            return render(request, "error.html", status_code=422, title="Something is wrong",
                          message=f"The address has a value this page cannot use ({name}).")
    return None


def route_class(ctx: Context) -> type[APIRoute]:
    """The route class of the web router, bound to ``ctx`` for the session key."""

    class WebRoute(APIRoute):
        def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
            handler = super().get_route_handler()
            ints = _int_params(self)

            async def handle(request: Request) -> Response:
                # Read once, then kept (a hand-over to a thread for it would cost two
                # waits for the GIL on every page while a worker sends).
                secret = ctx.known_secret
                if secret is None:
                    secret = await run_in_threadpool(lambda: ctx.secret)
                cookie = sessions.cookie_name(secret)
                loaded, start = await _load_session(ctx, request, secret)
                set_session(request, start)
                try:
                    out_of_range = _address_out_of_range(request, ints)
                    if out_of_range is not None:
                        return out_of_range
                    if request.method == "POST":
                        await _check_csrf(request, start)
                    response = await handler(request)
                except SignInRequired:
                    response = _to_sign_in(request)
                except CsrfFailed:
                    response = render(request, "error.html", status_code=403, title="Form expired",
                                      message="This form is out of date (or came from another "
                                              "site). Go back, reload the page and try again.")
                except TidingsError as exc:
                    response = _error_page(request, exc)
                except RequestValidationError as exc:
                    response = _bad_request_page(request, exc)
                except ClientDisconnect:  # the browser left (e.g. navigated away mid-htmx)
                    return Response(status_code=400)
                except sa.exc.DataError:
                    response = render(request, "error.html", status_code=422, title="Something is wrong",
                                      message="A value is out of range or too long to be saved. "
                                              "Go back, check what you entered and try again.")
                except Exception as exc:  # noqa: BLE001 - the page's last line of defence
                    said = log_internal(exc, f"{request.method} {request.url.path}")
                    response = render(request, "error.html", status_code=500,
                                      title="Something went wrong", message=said)
                final = session_of(request)
                if loaded is None or final.stored() != loaded.stored():
                    response.set_cookie(cookie, sessions.dump(final, secret),
                                        max_age=int(ctx.settings.session_lifetime), httponly=True,
                                        samesite="lax", path="/",
                                        secure=is_https(request.scope, ctx.settings))
                return response

            return handle

    return WebRoute
