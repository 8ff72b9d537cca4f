"""What a route of the HTTP API asks FastAPI for, once per request.

- :data:`Ctx`: the service :class:`~tidings.services.context.Context` the
  application was created with (``app.state.ctx``).
- :data:`Who`: the :class:`~tidings.domain.actors.Actor` named by the
  ``Authorization: Bearer TOKEN`` header; a missing or unknown token is a
  401 ``unauthorized`` before the route runs. :func:`api_router` makes every
  route of a ``/api/v1`` router require it; a route that also takes ``Who``
  gets the same actor (FastAPI resolves the dependency once per request).
  Routes pass it to the services that check roles or write the audit log.
- :data:`Admin`: the same actor, and a 403 ``forbidden`` before the route
  runs unless its role is admin.
- :data:`JsonBody`: the JSON object of the request body, for routes whose
  service validates the fields itself and names the bad one.
- :data:`CsvBody`: the raw body of a CSV upload; an empty one is a 422
  ``invalid_input`` on ``body``. It is read off the event loop: the route
  runs in a worker thread, and so does everything it calls.
- :data:`Id`, :data:`Limit`, :data:`Offset`: integers in a path or query,
  bounded to what the database holds; beyond, a 422 ``invalid_input`` names
  the parameter instead of a database error.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from starlette.concurrency import run_in_threadpool

from tidings.domain.actors import Actor
from tidings.errors import InvalidInput
from tidings.services import tokens
from tidings.services.context import Context

#: Where every JSON route lives; the JSON body middleware looks only here.
API_PREFIX = "/api/v1"
#: The largest id (the database's 64-bit integers) and offset of a page.
MAX_ID = 2**63 - 1
MAX_OFFSET = 1_000_000_000
MAX_LIMIT = 500


def _context(request: Request) -> Context:
    ctx: Context = request.app.state.ctx
    return ctx


async def context(request: Request) -> Context:
    """The context given to :func:`tidings.api.app.create_app`."""
    return _context(request)


async def authenticated_actor(request: Request) -> Actor:
    """The actor of the bearer token; raises ``Unauthorized`` (401) without a valid one.

    The dependencies are coroutines, so that FastAPI runs them on the event loop
    instead of handing each to a thread of its own: only a stored token's lookup
    (a database read) goes to a thread. In ``tidings serve`` every hand-over
    waits for the GIL the sending worker's threads hold, twice."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    token = token.strip() if scheme.lower() == "bearer" else ""
    ctx = _context(request)
    env_admin = tokens.env_admin_actor(ctx, token) if token else None
    if env_admin is not None:
        return env_admin
    return await run_in_threadpool(tokens.authenticate, ctx, token or None)


async def csv_body(request: Request) -> bytes:
    """The request body as bytes; raises ``InvalidInput`` (field ``body``) if it is blank."""
    data = await request.body()
    if not data.strip():
        raise InvalidInput("The CSV body is empty.", field="body")
    return data


async def admin_actor(actor: Annotated[Actor, Depends(authenticated_actor)]) -> Actor:
    """The bearer token's actor if it is an admin; raises ``Forbidden`` (403) otherwise."""
    actor.require_admin()
    return actor


Id = Annotated[int, Path(ge=1, le=MAX_ID, description="an id (a positive 64-bit integer)")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description="how many to return")]
Offset = Annotated[int, Query(ge=0, le=MAX_OFFSET, description="how many to skip")]
Ctx = Annotated[Context, Depends(context)]
Who = Annotated[Actor, Depends(authenticated_actor)]
Admin = Annotated[Actor, Depends(admin_actor)]
JsonBody = Annotated[dict[str, Any], Body()]
CsvBody = Annotated[bytes, Depends(csv_body)]


def api_router() -> APIRouter:
    """A router under :data:`API_PREFIX` whose every route needs a bearer token."""
    return APIRouter(prefix=API_PREFIX, dependencies=[Depends(authenticated_actor)])


__all__ = ["API_PREFIX", "MAX_ID", "Admin", "Ctx", "CsvBody", "Id", "JsonBody", "Limit", "Offset", "Who",
           "admin_actor", "api_router", "authenticated_actor", "context", "csv_body"]
