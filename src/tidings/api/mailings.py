"""``/api/v1/mailings``: mailings, their actions, chain steps, statistics and
the test send. Bearer token, any role, except that resuming a mailing the
reputation guard interrupted needs an admin (the service checks the role of
the :data:`~tidings.api.dependencies.Who`).

- ``POST /mailings`` (201), ``GET /mailings`` (``status``, paged),
  ``GET /mailings/{mailing_id}``, ``PATCH /mailings/{mailing_id}``,
  ``DELETE /mailings/{mailing_id}`` (204).
- Actions, each answering with the mailing: ``POST .../send``,
  ``.../schedule`` ``{"send_at"?}``, ``.../cancel``, ``.../resume``,
  ``.../send-unknown`` (send again to those whose outcome is unknown; some
  may get it twice), and ``.../copy`` (201, the new draft).
- ``POST /mailings/{mailing_id}/steps`` (201): the next step of the chain.
- ``GET /mailings/{mailing_id}/stats``: figures, rates, per step and per chain.
- ``GET /mailings/{mailing_id}/sms-parts``: an SMS mailing's parts for its
  whole audience if it went now (encodings, parts per message, warnings).
- ``POST /mailings/{mailing_id}/test`` ``{"email"}``: one message to a test
  address (see :mod:`tidings.services.test_addresses`): counted against the
  quota, 50 an hour per token.
- ``GET /mailings/{mailing_id}/checklist`` (``?wait=`` seconds for the link
  checks, 0 to 10, default 6): ``{"ready": bool, "checks": [{"key", "level",
  "title", "message", "code", "details"}]}``; ``ready`` is false when an item
  is ``blocking``, and ``send``/``schedule`` then refuse with its ``code``
  (see :mod:`tidings.services.checklist`).

Sending, scheduling, canceling, resuming, deleting and test sends are in the
audit log under the token's name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import Query, Response
from pydantic import AwareDatetime, BaseModel, field_validator

from tidings.api.dependencies import Ctx, Id, JsonBody, Limit, Offset, Who, api_router
from tidings.domain.bounds import bounded_moment
from tidings.errors import InvalidInput
from tidings.services import checklist, mailings, sms_parts, stats, test_sends

router = api_router()


class ScheduleBody(BaseModel):
    #: Required for a first step; a later chain step goes at its chain time without it.
    send_at: AwareDatetime | None = None

    @field_validator("send_at")
    @classmethod
    def _within_years(cls, value: datetime | None) -> datetime | None:
        if value is not None:
            try:
                bounded_moment(value, "send_at")
            except InvalidInput as exc:
                raise ValueError(exc.message) from None
        return value


@router.post("/mailings", status_code=201, tags=["mailings"])
def post_mailing(ctx: Ctx, body: JsonBody) -> dict[str, Any]:
    return mailings.create(ctx, body)


@router.get("/mailings", tags=["mailings"])
def list_mailings(ctx: Ctx, status: str | None = None,
                  limit: Limit = 50,
                  offset: Offset = 0) -> dict[str, Any]:
    return {"mailings": mailings.list_(ctx, limit=limit, offset=offset, status=status)}


@router.get("/mailings/{mailing_id}", tags=["mailings"])
def get_mailing(ctx: Ctx, mailing_id: Id) -> dict[str, Any]:
    return mailings.get(ctx, mailing_id)


@router.patch("/mailings/{mailing_id}", tags=["mailings"])
def patch_mailing(ctx: Ctx, mailing_id: Id, body: JsonBody) -> dict[str, Any]:
    return mailings.update(ctx, mailing_id, body)


@router.delete("/mailings/{mailing_id}", status_code=204, tags=["mailings"])
def delete_mailing(ctx: Ctx, actor: Who, mailing_id: Id) -> Response:
    mailings.delete(ctx, mailing_id, actor=actor)
    return Response(status_code=204)


# -- actions


@router.post("/mailings/{mailing_id}/send", tags=["mailings"])
def send(ctx: Ctx, actor: Who, mailing_id: Id) -> dict[str, Any]:
    return mailings.send_now(ctx, mailing_id, actor=actor)


@router.post("/mailings/{mailing_id}/schedule", tags=["mailings"])
def schedule(ctx: Ctx, actor: Who, mailing_id: Id, body: ScheduleBody | None = None) -> dict[str, Any]:
    return mailings.schedule(ctx, mailing_id, body.send_at if body else None, actor=actor)


@router.post("/mailings/{mailing_id}/cancel", tags=["mailings"])
def cancel(ctx: Ctx, actor: Who, mailing_id: Id) -> dict[str, Any]:
    return mailings.cancel(ctx, mailing_id, actor=actor)


@router.post("/mailings/{mailing_id}/resume", tags=["mailings"])
def resume(ctx: Ctx, actor: Who, mailing_id: Id) -> dict[str, Any]:
    return mailings.resume(ctx, mailing_id, actor=actor)


@router.post("/mailings/{mailing_id}/send-unknown", tags=["mailings"])
def send_unknown(ctx: Ctx, actor: Who, mailing_id: Id) -> dict[str, Any]:
    """Send the mailing again to the people whose message has an unknown outcome
    (``progress.unknown``: a worker stopped with it on the wire, so it may have
    been delivered; **some of them may get it twice**) and, as with resume, to
    those not yet sent. For a mailing that is sent, canceled or interrupted and
    has unknown messages (then ``send_unknown`` is among its ``actions``); 409
    ``nothing_unknown`` when there are none, ``mailing_sending`` while it is
    being sent. Answers with the mailing, sending again."""
    return mailings.send_unknown(ctx, mailing_id, actor=actor)


@router.post("/mailings/{mailing_id}/copy", status_code=201, tags=["mailings"])
def copy(ctx: Ctx, mailing_id: Id) -> dict[str, Any]:
    return mailings.copy(ctx, mailing_id)


# -- chain steps, statistics, test send


@router.post("/mailings/{mailing_id}/steps", status_code=201, tags=["mailings"])
def add_step(ctx: Ctx, mailing_id: Id, body: JsonBody) -> dict[str, Any]:
    return mailings.add_step(ctx, mailing_id, body)


@router.get("/mailings/{mailing_id}/stats", tags=["mailings"])
def mailing_stats(ctx: Ctx, mailing_id: Id) -> dict[str, Any]:
    """The contract's figures, the rates, and per-step and whole-chain totals."""
    return stats.mailing_stats(ctx, mailing_id)


@router.post("/mailings/{mailing_id}/test", tags=["mailings"])
def test_send(ctx: Ctx, actor: Who, mailing_id: Id, body: JsonBody) -> dict[str, Any]:
    """``{"email"}``: one rendered message of the mailing to that address, through
    the configured transport. Only to a person's address or a test address an
    admin keeps, never to an unsubscribed or suppressed one; one message of the
    email quota; at most 50 an hour per token (429). No message row or statistics."""
    return test_sends.send_test(ctx, mailing_id, body, actor=actor)


@router.get("/mailings/{mailing_id}/sms-parts", tags=["mailings"])
def get_sms_parts(ctx: Ctx, mailing_id: Id) -> dict[str, Any]:
    """The SMS parts the mailing's audience would take now (see
    :func:`tidings.services.sms_parts.audience_parts`)."""
    return sms_parts.audience_parts(ctx, mailing_id)


@router.get("/mailings/{mailing_id}/checklist", tags=["mailings"])
def mailing_checklist(ctx: Ctx, mailing_id: Id,
                      wait: Annotated[float, Query(ge=0, le=10)] = 6) -> dict[str, Any]:
    """What would stop or spoil the send, item by item; see the module docstring."""
    checks = checklist.checklist(ctx, mailing_id, wait=wait)
    return {"ready": not checklist.is_blocked(checks), "checks": [c.as_dict() for c in checks]}
