"""``/api/v1/users``: the people who sign in to the web UI. Admin token only
(403 for a manager).

- ``GET /users``: ``{"users": [{"id", "email", "role", "created_at"}]}``.
- ``POST /users`` ``{"email", "password", "role"?}`` (201): the new person.
- ``GET /users/{user_id}``, ``PATCH /users/{user_id}`` ``{"role"}`` (their
  sessions end), ``DELETE /users/{user_id}`` (204; their sessions end).
  The last admin can be neither demoted nor removed (409 ``last_admin``).
- ``POST /users/{user_id}/password-reset``: their password stops working and
  their sessions end; a one-time link to choose a new one is mailed to them
  when ``TIDINGS_SMTP_URL`` names a mail server, otherwise returned as ``link``.

Every change is in the audit log under the token's name.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from pydantic import BaseModel, Field

from tidings.api.dependencies import Admin, Ctx, Id, api_router
from tidings.services import users

router = api_router()


class NewUser(BaseModel):
    email: str = Field(max_length=320)
    password: str = Field(max_length=1024)
    role: str = "manager"


class UserChange(BaseModel):
    role: str


@router.get("/users", tags=["users"])
def list_users(ctx: Ctx, actor: Admin) -> dict[str, Any]:
    return {"users": users.list_users(ctx)}


@router.post("/users", status_code=201, tags=["users"])
def create_user(ctx: Ctx, actor: Admin, body: NewUser) -> dict[str, Any]:
    """A person who signs in with that email and password (8 characters or more);
    409 ``user_exists`` if the email is taken."""
    user_id = users.create_user(ctx, email=body.email, password=body.password, role=body.role,
                                actor=actor)
    return users.get_user(ctx, user_id)


@router.get("/users/{user_id}", tags=["users"])
def get_user(ctx: Ctx, actor: Admin, user_id: Id) -> dict[str, Any]:
    return users.get_user(ctx, user_id)


@router.patch("/users/{user_id}", tags=["users"])
def change_user(ctx: Ctx, actor: Admin, user_id: Id, body: UserChange) -> dict[str, Any]:
    """``{"role": "admin" | "manager"}``; the person's sessions end."""
    return users.change_role(ctx, user_id, role=body.role, actor=actor)


@router.delete("/users/{user_id}", status_code=204, tags=["users"])
def remove_user(ctx: Ctx, actor: Admin, user_id: Id) -> Response:
    users.remove_user(ctx, user_id, actor=actor)
    return Response(status_code=204)


@router.post("/users/{user_id}/password-reset", tags=["users"])
def reset_password(ctx: Ctx, actor: Admin, user_id: Id) -> dict[str, Any]:
    """``{"user_id", "email", "expires_at", "mailed", "link", "mail_problem"}``:
    ``link`` is null when the link was mailed to the person."""
    return users.reset_password(ctx, user_id=user_id, actor=actor)
