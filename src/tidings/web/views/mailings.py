"""Mailings: the list, the mailing page with its status line and actions, chain steps."""

from __future__ import annotations

import zoneinfo
from collections.abc import Callable
from datetime import datetime
from functools import cache
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import Response

from tidings.domain import mailings as rules
from tidings.domain.conversions import BASES as BASES_KEYS
from tidings.domain.mailings import Action, MailingStatus
from tidings.errors import InvalidInput, MailingLocked, TidingsError
from tidings.services import audience, mailings, sms_parts
from tidings.services import stats as stats_service
from tidings.services import templates as template_service
from tidings.services.context import Context
from tidings.web import charts
from tidings.web.routing import Form, Who, field_errors, flash, redirect, render
from tidings.web.wording import say

PAGE_SIZE = 50
STATUS_NAMES = {status.value: name for status, name in rules.LABELS.items()}
#: The domain's conditions and bases, in the manager's words.
CONDITIONS = dict(zip(rules.CONDITIONS, (
    "everyone who got the step before", "those who opened the step before",
    "those who did not open the step before", "those who clicked in the step before",
    "those who did not click in the step before", "those who did not buy after the step before"),
    strict=True))
BASES = dict(zip(BASES_KEYS, ("received the message", "opened it", "clicked a link"), strict=True))
CHARTED = ("sent", "delivered", "opened", "clicked", "bounced", "unsubscribed", "complained")
EDIT_FIELDS = ("name", "segment_id", "template_id", "from_email", "from_name", "reply_to")


@cache
def timezones() -> list[tuple[str, str]]:
    return [(zone, zone.replace("_", " ")) for zone in sorted(zoneinfo.available_timezones())]


def _aware(local: str, tz: str) -> datetime:
    """``2025-05-01T09:30`` in the zone ``tz`` as an aware datetime."""
    try:
        zone = zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise InvalidInput(f"Choose a time zone from the list ({tz!r} is not one).",
                           field="tz") from None
    try:
        return datetime.fromisoformat(local).replace(tzinfo=zone)
    except ValueError:
        raise InvalidInput("Give the date and time to send, e.g. 2025-05-01 09:30.",
                           field="send_at") from None


def _whole(text: str) -> bool:
    """Whether ``text`` is a whole number as people type one (ASCII digits; ``int``
    takes other scripts' digits too, and refuses more than 4,300 of them)."""
    return text.isascii() and text.isdigit() and len(text) <= 30


def _form_values(form: Any) -> dict[str, Any]:
    """The mailing fields of a settings form; empty means "not set", ids are numbers."""
    values: dict[str, Any] = {}
    for key in EDIT_FIELDS:
        if key in form:
            text = str(form.get(key, "")).strip()
            values[key] = (int(text) if _whole(text) else text or None) if key.endswith("_id") \
                else text or None
    return values


def _conversion(form: Any, current: dict[str, Any] | None) -> dict[str, Any] | None:
    if "window_days" not in form:
        return None
    text = str(form.get("window_days", "")).strip()
    if not _whole(text):
        raise InvalidInput("The conversion window is a whole number of days from 1 to 365.",
                           field="conversion.window_days")
    basis = str(form.get("basis", "received"))
    return {**(current or {}), "window_days": int(text), "basis": basis}


def _quiet_hours(form: Any) -> dict[str, Any] | None:
    """The quiet hours of an SMS mailing's settings form (None: not on the form)."""
    if "quiet_window" not in form:
        return None
    return {"enabled": form.get("quiet_enabled") == "on", "window": str(form.get("quiet_window", "")).strip()}


def _editable(mailing: dict[str, Any], now: datetime) -> tuple[bool, str | None]:
    send_at = datetime.fromisoformat(mailing["send_at"]) if mailing["send_at"] else None
    try:
        rules.check_editable(status=MailingStatus(mailing["status"]), send_at=send_at, now=now)
    except MailingLocked as exc:
        return False, say(exc)
    return True, None


def _not_ready(mailing: dict[str, Any], segment: dict[str, Any] | None,
               reach: dict[str, int] | None) -> str | None:
    """Why Send now and Schedule are off for this draft (or scheduled mailing), in
    the manager's words, or ``None`` when it can go: a segment and template are
    chosen, an email has a From address, and someone in the segment can receive
    it on its channel. A later chain step is sent by its chain (no such buttons)."""
    if mailing["step"] > 1:
        return None
    missing = [what for key, what in (("segment_id", "a segment"), ("template_id", "a template"))
               if mailing[key] is None]
    if mailing["channel"] == "email" and not mailing["from_email"]:
        missing.append("a From address")
    if missing:
        return f"Choose {' and '.join(missing)} first, in Settings below."
    if segment is not None and reach is not None and reach[mailing["channel"]] == 0:
        address = "an email address" if mailing["channel"] == "email" else "a phone number"
        return (f"Nobody in the segment {segment['name']} can receive it: no customer there has "
                f"{address} and is subscribed. Choose another segment, or add customers to it.")
    return None


def _chain_time(mailing: dict[str, Any], now: datetime) -> datetime | None:
    """When a later step goes if scheduled by its chain now (the step before it
    was sent), else None."""
    previous = next((s for s in mailing.get("steps", []) if s["step"] == mailing["step"] - 1), None)
    if previous is None or not previous.get("finished_at"):
        return None
    return rules.chain_step_due(previous_finished_at=datetime.fromisoformat(previous["finished_at"]),
                                delay_hours=mailing["delay_hours"], now=now)


def add_routes(r: APIRouter, ctx: Context) -> None:
    def statistics(mailing: dict[str, Any]) -> dict[str, Any]:
        """The statistics panel, once sending started."""
        if MailingStatus(mailing["status"]) not in rules.STARTED:
            return {"stats": None, "bars": [], "timeline": None}
        stats = stats_service.mailing_stats(ctx, mailing["id"])
        shown = [(key.capitalize(), float(stats[key])) for key in CHARTED if key in stats]
        return {"stats": stats, "bars": charts.bars(shown) if stats.get("sent") else [],
                "timeline": stats.get("timeline"), "polyline": charts.polyline}

    def sms_cost(mailing: dict[str, Any], not_ready: str | None) -> dict[str, Any] | None:
        """What Send now would cost in SMS parts (see :func:`sms_parts.audience_parts`)."""
        if mailing["channel"] != "sms" or "send" not in mailing["actions"] or not_ready:
            return None
        try:
            return sms_parts.audience_parts(ctx, mailing["id"])
        except TidingsError:
            return None

    def audience_of(mailing: dict[str, Any]) -> dict[str, Any]:
        """The segment (a later chain step uses its first step's) and, before sending,
        how many it reaches."""
        segment_id = mailing["segment_id"] if mailing["step"] == 1 else \
            mailings.get(ctx, mailing["chain_id"])["segment_id"]
        if segment_id is None:
            return {"segment": None, "reach": None}
        waiting = mailing["status"] in ("draft", "scheduled")
        return {"segment": audience.get_segment(ctx, segment_id),
                "reach": audience.count_segment(ctx, segment_id) if waiting else None}

    def mailing_page(request: Request, mailing_id: int, *, status: int = 200,
                     errors: dict[str, dict[str, str]] | None = None,
                     values: dict[str, dict[str, Any]] | None = None,
                     confirm: str = "", menu: str = "") -> Response:
        """The page; ``confirm`` names the confirmation to show open and ``menu``
        the menu (how the page works without JavaScript). Everything it shows is
        read in one transaction (see :meth:`Context.read`)."""
        with ctx.read():
            mailing = mailings.get(ctx, mailing_id)
            reached = audience_of(mailing)
            not_ready = _not_ready(mailing, reached["segment"], reached["reach"])
            shown = {**reached, **statistics(mailing), "sms_cost": sms_cost(mailing, not_ready),
                     "templates": {t["id"]: t for t in template_service.list_templates(ctx)},
                     "segments": audience.list_segments(ctx)}
        state = MailingStatus(mailing["status"])
        editable, lock_reason = _editable(mailing, ctx.now())
        return render(
            request, "mailing.html", status_code=status, mailing=mailing,
            **shown, confirm=confirm, menu=menu, not_ready=not_ready,
            package_size=ctx.settings.package_size,
            smtp_retry_for=ctx.settings.smtp_retry_for, lock_before=rules.LOCK_BEFORE,
            after_cancel=rules.next_status(state, Action.CANCEL).value
            if "cancel" in mailing["actions"] else None,
            editable=editable, lock_reason=lock_reason, conditions=CONDITIONS, bases=BASES,
            statuses=STATUS_NAMES, chain_time=_chain_time(mailing, ctx.now()),
            timezones=timezones(), errors=errors or {}, values=values or {},
        )

    def act(request: Request, mailing_id: int, action: Callable[[], dict[str, Any]],
            done: str) -> Response:
        """Run one mailing action; its refusal is shown on the mailing page."""
        try:
            mailing = action()
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(f"/mailings/{mailing_id}")
        flash(request, done.format(**mailing))
        return redirect(f"/mailings/{mailing['id']}")

    @r.get("/mailings")
    def mailings_page(request: Request, actor: Who, status: str = "", fragment: bool = False,
                      page: Annotated[int, Query(ge=1)] = 1) -> Response:
        found = mailings.list_(ctx, limit=PAGE_SIZE + 1, offset=(page - 1) * PAGE_SIZE,
                               status=status if status in STATUS_NAMES else None)
        return render(request, "_mailings_table.html" if fragment else "mailings.html",
                      fragment=fragment, mailings=found[:PAGE_SIZE], page=page,
                      has_next=len(found) > PAGE_SIZE, status=status, statuses=STATUS_NAMES,
                      polling=any(m["status"] == "sending" for m in found))

    @r.get("/mailings/new")
    def new_mailing(request: Request, actor: Who) -> Response:
        return render(request, "mailing_new.html", values={"channel": "email"}, errors={},
                      segments=audience.list_segments(ctx), templates=template_service.list_templates(ctx))

    @r.post("/mailings/new")
    def create_mailing(request: Request, actor: Who, form: Form) -> Response:
        values = _form_values(form) | {"channel": str(form.get("channel", "email"))}
        try:
            mailing = mailings.create(ctx, values)
        except TidingsError as exc:
            return render(request, "mailing_new.html", status_code=exc.status, values=values,
                          errors=field_errors(exc), segments=audience.list_segments(ctx),
                          templates=template_service.list_templates(ctx))
        flash(request, f"Draft {mailing['name']} created. Check it, then send or schedule it.")
        return redirect(f"/mailings/{mailing['id']}")

    @r.get("/mailings/{mailing_id}")
    def mailing(request: Request, actor: Who, mailing_id: int, confirm: str = "",
                menu: str = "") -> Response:
        return mailing_page(request, mailing_id, confirm=confirm, menu=menu)

    @r.get("/mailings/{mailing_id}/status")
    def status_line(request: Request, actor: Who, mailing_id: int, was: str = "") -> Response:
        """The live part of the page; a changed status reloads the whole page (new buttons)."""
        current = mailings.get(ctx, mailing_id, with_steps=False)
        if was and current["status"] != was:
            return Response(status_code=204, headers={"HX-Refresh": "true"})
        return render(request, "_mailing_status.html", fragment=True, mailing=current)

    @r.post("/mailings/{mailing_id}/edit")
    def edit(request: Request, actor: Who, mailing_id: int, form: Form) -> Response:
        values = _form_values(form)
        try:
            conversion = _conversion(form, mailings.get(ctx, mailing_id)["conversion"])
            changes = values | ({"conversion": conversion} if conversion else {})
            quiet = _quiet_hours(form)
            if quiet is not None:
                changes["quiet_hours"] = quiet
            mailings.update(ctx, mailing_id, changes)
        except TidingsError as exc:
            return mailing_page(request, mailing_id, status=exc.status,
                                errors={"edit": field_errors(exc)},
                                values={"edit": values | {k: form.get(k) for k in
                                                          ("window_days", "basis", "quiet_window",
                                                           "quiet_enabled")}})
        flash(request, "Changes saved.")
        return redirect(f"/mailings/{mailing_id}")

    @r.post("/mailings/{mailing_id}/send")
    def send_now(request: Request, actor: Who, mailing_id: int) -> Response:
        return act(request, mailing_id, lambda: mailings.send_now(ctx, mailing_id, actor=actor),
                   "Sending {name} has started.")

    @r.post("/mailings/{mailing_id}/schedule")
    def schedule(request: Request, actor: Who, mailing_id: int, form: Form) -> Response:
        local, tz = str(form.get("send_at", "")).strip(), str(form.get("tz", "UTC"))
        later_step = mailings.get(ctx, mailing_id)["step"] > 1
        try:
            # a later chain step without a time goes at its chain time
            mailing = mailings.schedule(ctx, mailing_id,
                                        None if later_step and not local else _aware(local, tz),
                                        actor=actor)
        except InvalidInput as exc:
            return mailing_page(request, mailing_id, status=422,
                                errors={"schedule": field_errors(exc)},
                                values={"schedule": {"send_at": local, "tz": tz}})
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(f"/mailings/{mailing_id}")
        flash(request, f"Scheduled for {local.replace('T', ' ')} ({tz})." if local
              else f"{mailing['status_label']}, its chain time.")
        return redirect(f"/mailings/{mailing_id}")

    @r.post("/mailings/{mailing_id}/cancel")
    def cancel(request: Request, actor: Who, mailing_id: int) -> Response:
        return act(request, mailing_id, lambda: mailings.cancel(ctx, mailing_id, actor=actor),
                   "{name} is now {status_label}.")

    @r.post("/mailings/{mailing_id}/resume")
    def resume(request: Request, actor: Who, mailing_id: int) -> Response:
        return act(request, mailing_id, lambda: mailings.resume(ctx, mailing_id, actor=actor),
                   "Sending {name} resumed.")

    @r.post("/mailings/{mailing_id}/send-unknown")
    def send_unknown(request: Request, actor: Who, mailing_id: int) -> Response:
        return act(request, mailing_id, lambda: mailings.send_unknown(ctx, mailing_id, actor=actor),
                   "Sending {name} again to those whose message had an unknown outcome.")

    @r.post("/mailings/{mailing_id}/copy")
    def copy(request: Request, actor: Who, mailing_id: int) -> Response:
        return act(request, mailing_id, lambda: mailings.copy(ctx, mailing_id),
                   "This is a new draft, {name}.")

    @r.post("/mailings/{mailing_id}/delete")
    def delete(request: Request, actor: Who, mailing_id: int) -> Response:
        name = mailings.get(ctx, mailing_id)["name"]
        try:
            mailings.delete(ctx, mailing_id, actor=actor)
        except TidingsError as exc:
            flash(request, say(exc), "error")
            return redirect(f"/mailings/{mailing_id}")
        flash(request, f"Mailing {name} deleted.")
        return redirect("/mailings")

    @r.post("/mailings/{mailing_id}/steps")
    def add_step(request: Request, actor: Who, mailing_id: int, form: Form) -> Response:
        values = {k: str(form.get(k, "")).strip()
                  for k in ("template_id", "delay_hours", "condition")}
        try:
            delay = float(values["delay_hours"] or 24)
        except ValueError:
            delay = -1.0
        data = {"template_id": int(values["template_id"]) if _whole(values["template_id"])
                else None, "delay_hours": delay, "condition": values["condition"] or "all"}
        try:
            step = mailings.add_step(ctx, mailing_id, data)
        except TidingsError as exc:
            return mailing_page(request, mailing_id, status=exc.status,
                                errors={"step": field_errors(exc)}, values={"step": values})
        flash(request, f"Step {step['step']} added: {step['name']}.")
        return redirect(f"/mailings/{mailing_id}")
