"""Mailing use cases: create, edit, send, schedule, cancel, resume, copy, delete, steps."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from tidings.domain import mailings as rules
from tidings.domain.mailings import Action, MailingStatus
from tidings.engine.audience import count_receivable
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services.auth import Actor
from tidings.services.context import Context
from tidings.store import content as content_store
from tidings.store import mailings as store

EDITABLE = ("name", "segment_id", "template_id", "from_email", "from_name", "reply_to",
            "conversion", "delay_hours", "condition")
CHANNELS = ("email", "sms")
#: How the web UI's messages name a channel or a missing field (``manager_message``).
_WORDS = {"email": "email", "sms": "SMS", "segment_id": "a segment", "template_id": "a template",
          "from_email": "a From address"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _load(conn: sa.Connection, mailing_id: int, *, for_update: bool = False) -> dict[str, Any]:
    row = store.get(conn, mailing_id, for_update=for_update)
    if row is None:
        raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
    return row


#: Moves the system makes by itself; a person never asks for them.
_AUTOMATIC = frozenset({Action.START, Action.INTERRUPT, Action.FINISH, Action.RESET,
                        Action.CANCEL_COMPLETE})


def actions(status: MailingStatus, *, step: int, canceling: bool = False,
            previous_sent: bool = False) -> list[str]:
    """What a person may ask of a mailing now, sorted: the transitions open from
    ``status`` and ``copy`` (always). A later chain step is sent by its chain, so
    it never offers ``send``, and offers ``schedule`` only once the step before it
    was sent (to re-arm it after a cancel); a mailing being canceled cannot be
    canceled again."""
    offered = {a.value for a in rules.allowed_actions(status) if a not in _AUTOMATIC}
    if step > 1:
        offered.discard(Action.SEND.value)
        if not previous_sent:
            offered.discard(Action.SCHEDULE.value)
    if canceling:
        offered.discard(Action.CANCEL.value)
    return sorted(offered | {"copy"})


def to_json(conn: sa.Connection, row: dict[str, Any], *, with_steps: bool = True) -> dict[str, Any]:
    """The mailing as the API shows it. Besides the contract's fields:
    ``status_label`` (the status line, times in UTC), ``actions`` (see
    :func:`actions`) and ``deletable`` (``DELETE`` would be accepted, by
    :func:`~tidings.domain.mailings.is_deletable` with its message rows as
    statistics)."""
    status = MailingStatus(row["status"])
    progress = store.progress(conn, row["id"])
    canceling = status is MailingStatus.SENDING and row["cancel_requested_at"] is not None
    percent = 100.0 if status is MailingStatus.SENT else progress.percent
    reason = None
    if row["interrupt_code"]:
        reason = {"code": row["interrupt_code"], "message": row["interrupt_message"]}
    data = {
        "id": row["id"],
        "name": row["name"],
        "channel": row["channel"],
        "segment_id": row["segment_id"],
        "template_id": row["template_id"],
        "from_email": row["from_email"],
        "from_name": row["from_name"],
        "reply_to": row["reply_to"],
        "conversion": row["conversion"],
        "status": status.value,
        "status_label": rules.label(status, percent=percent, send_at=row["send_at"],
                                    interrupt_message=row["interrupt_message"], canceling=canceling),
        "canceling": canceling,
        "send_at": _iso(row["send_at"]),
        "progress": {"total": progress.total, "sent": progress.sent, "failed": progress.failed,
                     "skipped": progress.skipped, "unknown": progress.unknown,
                     "queued": progress.queued + progress.sending, "percent": percent},
        "interrupt_reason": reason,
        "chain_id": row["chain_id"],
        "step": row["step"],
        "delay_hours": row["delay_hours"],
        "condition": row["condition"],
        "actions": actions(status, step=row["step"], canceling=canceling),
        "deletable": rules.is_deletable(status=status, step=row["step"],
                                        has_statistics=progress.total > 0),
        "created_at": _iso(row["created_at"]),
        "started_at": _iso(row["started_at"]),
        "finished_at": _iso(row["finished_at"]),
    }
    if with_steps or row["step"] > 1:
        chain = store.chain(conn, row["chain_id"])
        previous_sent = any(s["step"] == row["step"] - 1 and s["status"] == "sent" for s in chain)
        data["actions"] = actions(status, step=row["step"], canceling=canceling,
                                  previous_sent=previous_sent)
    if with_steps:
        data["steps"] = [
            {"id": s["id"], "step": s["step"], "name": s["name"], "status": s["status"],
             "template_id": s["template_id"], "delay_hours": s["delay_hours"],
             "condition": s["condition"], "send_at": _iso(s["send_at"])}
            for s in chain
        ]
    return data


def _check_refs(conn: sa.Connection, values: dict[str, Any], channel: str) -> None:
    if values.get("segment_id") is not None:
        if content_store.get_segment(conn, values["segment_id"]) is None:
            raise InvalidInput(f"There is no segment {values['segment_id']}.", field="segment_id")
    if values.get("template_id") is not None:
        tpl_channel = content_store.template_channel(conn, values["template_id"])
        if tpl_channel is None:
            raise InvalidInput(f"There is no template {values['template_id']}.", field="template_id")
        if tpl_channel != channel:
            raise InvalidInput(
                f"Template {values['template_id']} is for {tpl_channel}, the mailing is {channel}.",
                field="template_id", manager_message=f"That template is for {_WORDS[tpl_channel]}, "
                f"and this mailing is {_WORDS[channel]}: choose an {_WORDS[channel]} template.",
            )


def _clean(values: dict[str, Any], *, name: str, channel: str) -> dict[str, Any]:
    out = dict(values)
    for key in ("from_email", "reply_to"):
        if out.get(key):
            try:
                out[key] = validate_email(out[key], check_deliverability=False).normalized
            except EmailNotValidError as exc:
                raise InvalidInput(f"{key}: {exc}", field=key, manager_message=str(exc)) from None
    if "conversion" in out or "name" in out:
        out["conversion"] = rules.normalize_conversion(out.get("conversion"), name=name, channel=channel)
    if out.get("condition") is not None and out["condition"] not in rules.CONDITIONS:
        raise InvalidInput(f"condition must be one of {', '.join(rules.CONDITIONS)}.", field="condition")
    if out.get("delay_hours") is not None and not 0 <= float(out["delay_hours"]) <= 24 * 365:
        raise InvalidInput("delay_hours must be between 0 and 8760.", field="delay_hours",
                           manager_message="The delay is a number of hours from 0 to 8,760 (a year).")
    return out


def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    name = (data.get("name") or "").strip()
    if not name:
        raise InvalidInput("A mailing needs a name.", field="name")
    channel = data.get("channel", "email")
    if channel not in CHANNELS:
        raise InvalidInput("channel must be email or sms.", field="channel")
    unknown = set(data) - set(EDITABLE) - {"channel"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    values = _clean({k: data.get(k) for k in EDITABLE if k not in ("delay_hours", "condition")}
                    | {"name": name}, name=name, channel=channel)
    if channel == "email" and not values.get("from_email"):
        values["from_email"] = ctx.settings.default_from_email
        values["from_name"] = values.get("from_name") or ctx.settings.default_from_name
    now = ctx.now()
    with ctx.tx() as conn:
        _check_refs(conn, values, channel)
        mailing_id = store.insert(conn, {**values, "channel": channel, "status": "draft", "step": 1,
                                         "created_at": now, "updated_at": now})
        store.update(conn, mailing_id, {"chain_id": mailing_id})
        return to_json(conn, _load(conn, mailing_id))


def get(ctx: Context, mailing_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return to_json(conn, _load(conn, mailing_id))


def list_(ctx: Context, *, limit: int = 50, offset: int = 0,
          status: str | None = None) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [to_json(conn, r, with_steps=False)
                for r in store.list_(conn, limit=limit, offset=offset, status=status)]


def update(ctx: Context, mailing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
                           field=sorted(unknown)[0])
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        rules.check_editable(status=MailingStatus(row["status"]), send_at=row["send_at"], now=ctx.now())
        name = (data.get("name") or row["name"]).strip()
        values = _clean(data, name=name, channel=row["channel"])
        if "conversion" in values and "conversion" not in data:
            values.pop("conversion")  # a rename keeps the stored conversion block
        _check_refs(conn, values, row["channel"])
        previous = _previous_step(conn, row)
        if (row["status"] == MailingStatus.SCHEDULED and previous is not None
                and previous["finished_at"] is not None and "delay_hours" in values):
            # a scheduled later step goes at its chain time: a new delay moves it
            values["send_at"] = rules.chain_step_due(
                previous_finished_at=previous["finished_at"], delay_hours=values["delay_hours"],
                now=ctx.now())
        store.update(conn, mailing_id, {**values, "updated_at": ctx.now()})
        return to_json(conn, _load(conn, mailing_id))


def check_ready(conn: sa.Connection, ctx: Context, row: dict[str, Any]) -> None:
    """Everything a mailing needs before it can start (or be test-sent).

    Raises ``InvalidInput(code="mailing_incomplete")`` naming the first missing
    field, and for email :func:`check_sending_domain`'s ``Conflict``."""
    missing = [f for f in ("segment_id", "template_id") if row[f] is None and row["step"] == 1]
    if row["template_id"] is None:
        missing = sorted(set(missing) | {"template_id"})
    if row["channel"] == "email" and not row["from_email"]:
        missing.append("from_email")
    if missing:
        raise InvalidInput(f"The mailing is not ready to send: set {', '.join(missing)} first.",
                           code="mailing_incomplete", field=missing[0],
                           manager_message="It is not ready to send: choose "
                           f"{' and '.join(_WORDS[f] for f in missing)} first.")
    if row["channel"] == "email":
        check_sending_domain(conn, ctx, row["from_email"])


def check_sending_domain(conn: sa.Connection, ctx: Context, from_email: str) -> None:
    """Raise ``Conflict(code="domain_not_verified")`` unless mail from ``from_email``
    may go out: its domain is verified, or ``TIDINGS_REQUIRE_VERIFIED_DOMAIN`` is
    off, or mail goes to a ``file://`` outbox."""
    if not ctx.settings.require_verified_domain or ctx.settings.smtp_url.startswith("file://"):
        return
    domain = from_email.rsplit("@", 1)[1].lower()
    verified = content_store.domain_verified(conn, domain)
    if verified:
        return
    if verified is None:
        state, api = ("not set up: add it on the Domains page{}, publish the SPF, DKIM and DMARC "
                      "records it gives, then verify it."), " (or POST /api/v1/domains)"
    else:
        state, api = ("not verified yet: the Domains page{} shows the SPF, DKIM and DMARC "
                      "records to publish; publish them, then verify it."), " (or GET /api/v1/domains)"
    text = f"Mail can only go out from a verified sending domain, and {domain} is "
    raise Conflict(text + state.format(api), code="domain_not_verified",
                   manager_message=text + state.format(""))


def start(ctx: Context, conn: sa.Connection, row: dict[str, Any], action: Action) -> None:
    """Freeze the audience, cut packages and move the mailing to ``sending``,
    all in the caller's transaction. A first step that nobody can receive is
    refused (``Conflict(code="empty_audience")``, nothing written); a later
    step whose condition leaves nobody is sent to nobody and shows Sent."""
    from tidings.engine.audience import freeze

    rules.next_status(MailingStatus(row["status"]), action)
    check_ready(conn, ctx, row)
    now = ctx.now()
    if not store.move(conn, row["id"], from_=[row["status"]],
                      values={"status": "sending", "started_at": now, "updated_at": now,
                              "interrupt_code": None, "interrupt_message": None,
                              "cancel_requested_at": None}):
        raise Conflict("The mailing changed meanwhile; reload it.", code="concurrent_change")
    if freeze(conn, mailing=row, package_size=ctx.settings.package_size) == 0 and row["step"] == 1:
        raise _empty_audience(row)
    _finish_if_done(conn, row["id"], now=now)


def _empty_audience(row: dict[str, Any]) -> Conflict:
    channel = "email" if row["channel"] == "email" else "SMS"
    return Conflict(f"Nobody in this mailing's segment can receive {channel} now (no address, "
                    "unsubscribed, bounced or complained): there is nobody to send it to. "
                    "Choose another segment, or add customers to this one.", code="empty_audience")


def _finish_if_done(conn: sa.Connection, mailing_id: int, *, now: datetime) -> None:
    """``sending`` -> ``sent`` when nothing is left to send (a later chain step
    with nobody to send to, or a resumed mailing that was interrupted after its
    last message); the chain's next step is then scheduled, as the worker does
    when it sends the last package."""
    from tidings.engine.worker import schedule_next_step

    if store.finish_if_done(conn, mailing_id, now=now):
        schedule_next_step(conn, mailing_id, now=now)


def send_now(ctx: Context, mailing_id: int) -> dict[str, Any]:
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        if row["step"] > 1:
            raise Conflict("A later chain step is sent by its chain, after the step before it.",
                           code="chain_step")
        start(ctx, conn, row, Action.SEND)
        return to_json(conn, _load(conn, mailing_id))


def _previous_step(conn: sa.Connection, row: dict[str, Any]) -> dict[str, Any] | None:
    if row["step"] == 1:
        return None
    return next((s for s in store.chain(conn, row["chain_id"]) if s["step"] == row["step"] - 1), None)


def schedule(ctx: Context, mailing_id: int, send_at: datetime | None) -> dict[str, Any]:
    """Draft or scheduled -> scheduled at ``send_at``. A later chain step can be
    (re)scheduled once the step before it was sent (e.g. after a cancel
    returned it to Draft); without ``send_at`` it goes at its chain time."""
    now = ctx.now()
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        status = MailingStatus(row["status"])
        if status is MailingStatus.SCHEDULED:
            rules.check_editable(status=status, send_at=row["send_at"], now=now)
        previous = _previous_step(conn, row)
        if previous is not None:
            if previous["status"] != "sent":
                raise Conflict("A later chain step can only be scheduled once the step before "
                               "it has been sent; until then its chain schedules it.",
                               code="chain_step")
            if send_at is None:
                rules.next_status(status, Action.SCHEDULE)
                send_at = rules.chain_step_due(previous_finished_at=previous["finished_at"] or now,
                                               delay_hours=row["delay_hours"], now=now)
        if send_at is None:
            raise InvalidInput("send_at is required: the date and time to send, ISO 8601 with "
                               "a UTC offset.", field="send_at")
        if previous is None or send_at > now:
            rules.check_schedulable(status=status, send_at=send_at, now=now)
        check_ready(conn, ctx, row)
        if row["step"] == 1 and count_receivable(conn, row) == 0:
            raise _empty_audience(row)
        store.update(conn, mailing_id, {"status": "scheduled", "send_at": send_at, "updated_at": now})
        return to_json(conn, _load(conn, mailing_id))


def cancel(ctx: Context, mailing_id: int) -> dict[str, Any]:
    """Scheduled -> Draft; interrupted -> Canceled; sending -> canceling: no new
    package starts, and the mailing shows Canceled once the package in flight is
    out (at once when no package is being sent)."""
    now = ctx.now()
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        status = MailingStatus(row["status"])
        if status is MailingStatus.SENDING and row["cancel_requested_at"] is not None:
            raise Conflict("This mailing is already being canceled: it stops after the package "
                           "in flight.", code="already_canceling")
        new = rules.next_status(status, Action.CANCEL)
        values: dict[str, Any] = {"status": new.value, "updated_at": now}
        if new is MailingStatus.DRAFT:
            values["send_at"] = None
        if status is MailingStatus.SENDING:
            values["cancel_requested_at"] = now
        if not store.move(conn, mailing_id, from_=[row["status"]], values=values):
            raise Conflict("The mailing changed meanwhile; reload it.", code="concurrent_change")
        if status is MailingStatus.SENDING:
            complete_cancel(conn, mailing_id, now=now)
        return to_json(conn, _load(conn, mailing_id))


def complete_cancel(conn: sa.Connection, mailing_id: int, *, now: datetime) -> bool:
    """A canceling mailing becomes ``canceled`` when no package of it is being
    sent. The caller holds the mailing's lock (:func:`store.lock`)."""
    row = _load(conn, mailing_id)
    if row["status"] != MailingStatus.SENDING or row["cancel_requested_at"] is None:
        return False
    if store.has_active_packages(conn, mailing_id):
        return False
    new = rules.next_status(MailingStatus.SENDING, Action.CANCEL_COMPLETE)
    return store.move(conn, mailing_id, from_=[MailingStatus.SENDING.value],
                      values={"status": new.value, "updated_at": now})


def resume(ctx: Context, mailing_id: int, *, actor: Actor) -> dict[str, Any]:
    """Interrupted or canceled -> sending, with the messages not yet sent."""
    now = ctx.now()
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        rules.check_resume(status=MailingStatus(row["status"]), interrupt_code=row["interrupt_code"],
                           is_admin=actor.is_admin)
        values: dict[str, Any] = {"status": "sending", "interrupt_code": None,
                                  "interrupt_message": None, "cancel_requested_at": None,
                                  "updated_at": now}
        if row["interrupt_code"] == rules.InterruptCode.REPUTATION:
            # The admin has looked into it: the guard starts a fresh window.
            values |= store.GUARD_RESET
        if not store.move(conn, mailing_id, from_=[row["status"]], values=values):
            raise Conflict("The mailing changed meanwhile; reload it.", code="concurrent_change")
        _finish_if_done(conn, mailing_id, now=now)
        return to_json(conn, _load(conn, mailing_id))


def _copy_values(row: dict[str, Any]) -> dict[str, Any]:
    return {k: row[k] for k in ("channel", "segment_id", "template_id", "from_email", "from_name",
                                "reply_to", "conversion", "delay_hours", "condition", "step")}


def copy(ctx: Context, mailing_id: int) -> dict[str, Any]:
    """A new draft; copying a chain's first step copies the whole chain."""
    now = ctx.now()
    with ctx.tx() as conn:
        row = _load(conn, mailing_id)
        sources = store.chain(conn, row["chain_id"]) if row["step"] == 1 else [row]
        first_id: int | None = None
        for source in sources:
            values = _copy_values(source) | {"name": f"Copy of {source['name']}", "status": "draft",
                                             "created_at": now, "updated_at": now}
            if first_id is None:
                values["step"] = 1
            new_id = store.insert(conn, values | {"chain_id": first_id})
            if first_id is None:
                first_id = new_id
                store.update(conn, new_id, {"chain_id": new_id})
        assert first_id is not None
        return to_json(conn, _load(conn, first_id))


def delete(ctx: Context, mailing_id: int) -> None:
    """Delete a draft, or a later chain step without statistics, and the steps after it."""
    with ctx.tx() as conn:
        row = _load(conn, mailing_id, for_update=True)
        has_stats = store.has_messages(conn, mailing_id)
        if not rules.is_deletable(status=MailingStatus(row["status"]), step=row["step"],
                                  has_statistics=has_stats):
            raise Conflict(
                "Only a draft, or a chain step that has no statistics yet, can be deleted; "
                "cancel or copy this mailing instead.",
                code="not_deletable",
            )
        later = [s["id"] for s in store.chain(conn, row["chain_id"]) if s["step"] > row["step"]]
        if any(store.has_messages(conn, sid) for sid in later):
            raise Conflict("A later step of this chain already has statistics.", code="not_deletable")
        store.delete(conn, [mailing_id, *later])


def add_step(ctx: Context, mailing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Append a step (a draft mailing) to the chain that ``mailing_id`` belongs to."""
    unknown = set(data) - {"template_id", "delay_hours", "condition", "name", "from_email",
                           "from_name", "reply_to", "conversion"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if data.get("template_id") is None:
        raise InvalidInput("A step needs a template_id.", field="template_id",
                           manager_message="Choose a template for the step.")
    now = ctx.now()
    with ctx.tx() as conn:
        row = _load(conn, mailing_id)
        steps = store.chain(conn, row["chain_id"])
        last = steps[-1]
        name = (data.get("name") or f"{steps[0]['name']} - step {last['step'] + 1}").strip()
        values = _clean(
            {"delay_hours": data.get("delay_hours", 24), "condition": data.get("condition", "all"),
             "name": name, "conversion": data.get("conversion", last["conversion"]),
             "template_id": data["template_id"]},
            name=name, channel=row["channel"],
        )
        _check_refs(conn, values, row["channel"])
        step_id = store.insert(conn, {
            **values, "channel": row["channel"], "status": "draft", "step": last["step"] + 1,
            "chain_id": row["chain_id"], "segment_id": None,
            "from_email": data.get("from_email", last["from_email"]),
            "from_name": data.get("from_name", last["from_name"]),
            "reply_to": data.get("reply_to", last["reply_to"]),
            "created_at": now, "updated_at": now,
        })
        # A step added behind a step that is already sent is scheduled at once.
        if last["status"] == "sent" and last["finished_at"] is not None:
            when = rules.chain_step_due(previous_finished_at=last["finished_at"],
                                        delay_hours=values["delay_hours"], now=now)
            store.update(conn, step_id, {"status": "scheduled", "send_at": when})
        return to_json(conn, _load(conn, step_id))
