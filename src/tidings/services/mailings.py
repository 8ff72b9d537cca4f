"""Mailing use cases: create, edit, send, schedule, cancel, resume, copy, delete, steps.

Each owns its transaction. Status changes go through the verbs of
:mod:`tidings.engine.lifecycle`; this module only edits a mailing's fields,
checks what a person sent, and shows the mailing as the API does.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from tidings.domain import mailings as rules
from tidings.domain.actors import SYSTEM, Actor
from tidings.domain.bounds import check_id, check_text
from tidings.domain.conversions import normalize_conversion
from tidings.domain.mailings import Action, Channel, Mailing, MailingStatus
from tidings.domain.messages import recipient_of
from tidings.domain.quiet_hours import normalize_quiet_hours
from tidings.engine import lifecycle
from tidings.engine.render import renderer_for
from tidings.errors import Conflict, InvalidInput
from tidings.services import audit, shop
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import mailings as store
from tidings.store import packages, templates
from tidings.store import segments as segment_store
from tidings.store.audience import audience_where
from tidings.store.sending import SqlTransaction

EDITABLE = ("name", "segment_id", "template_id", "from_email", "from_name", "reply_to",
            "conversion", "delay_hours", "condition", "quiet_hours")
#: How the web UI's messages name a channel (``manager_message``).
_WORDS = {"email": "email", "sms": "SMS"}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _load(conn: sa.Connection, mailing_id: int, *, lock: bool = False) -> Mailing:
    return lifecycle.load(SqlTransaction(conn), mailing_id, lock=lock)


def to_json(conn: sa.Connection, mailing: Mailing, *, with_steps: bool = True,
            now: datetime | None = None) -> dict[str, Any]:
    """The mailing as the API shows it. Besides the contract's fields:
    ``status_label`` (the status line, times in UTC), ``canceling`` (canceled
    while sending: it stops after the package in flight), ``quiet_hours``
    (SMS: ``{"enabled", "window"}``), ``paused_until`` (an SMS mailing whose
    every recipient left is in their quiet hours goes on then), ``actions`` (see
    :func:`~tidings.domain.mailings.actions`) and ``deletable`` (``DELETE``
    would be accepted, by :func:`~tidings.domain.mailings.is_deletable` with
    its message rows as statistics)."""
    status = mailing.status
    progress = packages.progress(conn, mailing.id)
    paused = None
    if status is MailingStatus.SENDING and mailing.channel is Channel.SMS:
        paused = packages.paused_until(conn, mailing.id, now or datetime.now(UTC))
    percent = 100.0 if status is MailingStatus.SENT else progress.percent
    reason = None
    if mailing.interrupt_code:
        reason = {"code": mailing.interrupt_code, "message": mailing.interrupt_message}
    chain = store.chain(conn, mailing.chain_id) if with_steps or mailing.is_later_step else []
    previous_sent = any(s.step == mailing.step - 1 and s.status is MailingStatus.SENT for s in chain)
    data: dict[str, Any] = {
        "id": mailing.id,
        "name": mailing.name,
        "channel": mailing.channel.value,
        "segment_id": mailing.segment_id,
        "template_id": mailing.template_id,
        "from_email": mailing.from_email,
        "from_name": mailing.from_name,
        "reply_to": mailing.reply_to,
        "conversion": dict(mailing.conversion),
        "status": status.value,
        "status_label": rules.label(status, percent=percent, send_at=mailing.send_at,
                                    interrupt_message=mailing.interrupt_message,
                                    canceling=mailing.canceling, paused_until=paused),
        "canceling": mailing.canceling,
        "paused_until": _iso(paused),
        "quiet_hours": dict(mailing.quiet_hours) if mailing.quiet_hours else None,
        "send_at": _iso(mailing.send_at),
        "progress": {"total": progress.total, "sent": progress.sent, "failed": progress.failed,
                     "skipped": progress.skipped, "unknown": progress.unknown,
                     "queued": progress.queued + progress.sending, "percent": percent},
        "interrupt_reason": reason,
        "chain_id": mailing.chain_id,
        "step": mailing.step,
        "delay_hours": mailing.delay_hours,
        "condition": mailing.condition,
        "actions": rules.actions(mailing, previous_sent=previous_sent, unknown=progress.unknown),
        "deletable": rules.is_deletable(status=status, step=mailing.step,
                                        has_statistics=progress.total > 0),
        "created_at": _iso(mailing.created_at),
        "started_at": _iso(mailing.started_at),
        "finished_at": _iso(mailing.finished_at),
    }
    if with_steps:
        data["steps"] = [
            {"id": s.id, "step": s.step, "name": s.name, "status": s.status.value,
             "template_id": s.template_id, "delay_hours": s.delay_hours,
             "condition": s.condition, "send_at": _iso(s.send_at), "finished_at": _iso(s.finished_at)}
            for s in chain
        ]
    return data


def _check_refs(conn: sa.Connection, values: dict[str, Any], channel: Channel) -> None:
    for key, what in (("segment_id", "segment"), ("template_id", "template")):
        if values.get(key) is not None:
            check_id(values[key], key, what=what)
    if values.get("segment_id") is not None:
        if segment_store.get(conn, values["segment_id"]) is None:
            raise InvalidInput(f"There is no segment {values['segment_id']}.", field="segment_id")
    if values.get("template_id") is not None:
        tpl_channel = templates.channel_of(conn, values["template_id"])
        if tpl_channel is None:
            raise InvalidInput(f"There is no template {values['template_id']}.", field="template_id")
        if tpl_channel != channel:
            raise InvalidInput(
                f"Template {values['template_id']} is for {tpl_channel}, the mailing is {channel}.",
                field="template_id", manager_message=f"That template is for {_WORDS[tpl_channel]}, "
                f"and this mailing is {_WORDS[channel]}: choose an {_WORDS[channel]} template.",
            )


def _clean(values: dict[str, Any], *, name: str, channel: Channel,
           quiet_window: str = "21:00-09:00") -> dict[str, Any]:
    out = dict(values)
    for key, label in (("name", "name"), ("from_name", "sender's name")):
        if out.get(key) is not None:
            if not isinstance(out[key], str):
                raise InvalidInput(f"{key} must be a string.", field=key)
            check_text(out[key], key, label=label)
    if "quiet_hours" in out:
        out["quiet_hours"] = normalize_quiet_hours(out["quiet_hours"], channel=channel.value,
                                                   default_window=quiet_window)
    for key in ("from_email", "reply_to"):
        if out.get(key) is not None and not isinstance(out[key], str):
            raise InvalidInput(f"{key} must be an email address.", field=key)
        if out.get(key):
            try:
                out[key] = validate_email(out[key], check_deliverability=False).normalized
            except EmailNotValidError as exc:
                raise InvalidInput(f"{key}: {exc}", field=key, manager_message=str(exc)) from None
    if "conversion" in out or "name" in out:
        out["conversion"] = normalize_conversion(out.get("conversion"), name=name, channel=channel.value)
    if out.get("condition") is not None and out["condition"] not in rules.CONDITIONS:
        raise InvalidInput(f"condition must be one of {', '.join(rules.CONDITIONS)}.", field="condition")
    delay = out.get("delay_hours")
    if delay is not None and (isinstance(delay, bool) or not isinstance(delay, int | float)):
        raise InvalidInput("delay_hours must be a number of hours.", field="delay_hours",
                           manager_message="The delay is a number of hours from 0 to 8,760 (a year).")
    if delay is not None and not 0 <= float(delay) <= 24 * 365:
        raise InvalidInput("delay_hours must be between 0 and 8760.", field="delay_hours",
                           manager_message="The delay is a number of hours from 0 to 8,760 (a year).")
    return out


def _channel(value: Any) -> Channel:
    try:
        return Channel(value)
    except ValueError:
        raise InvalidInput("channel must be email or sms.", field="channel") from None


def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(data.get("name") or "", str):
        raise InvalidInput("name must be a string.", field="name")
    name = (data.get("name") or "").strip()
    if not name:
        raise InvalidInput("A mailing needs a name.", field="name")
    channel = _channel(data.get("channel", "email"))
    unknown = set(data) - set(EDITABLE) - {"channel"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    values = _clean({k: data.get(k) for k in EDITABLE if k not in ("delay_hours", "condition")}
                    | {"name": name}, name=name, channel=channel, quiet_window=ctx.settings.sms_quiet_hours)
    if channel is Channel.EMAIL and not values.get("from_email"):
        sender = shop.default_sender(ctx)
        values["from_email"] = sender.email
        values["from_name"] = values.get("from_name") or sender.name
    with ctx.tx() as conn:
        _check_refs(conn, values, channel)
        mailing_id = store.insert(conn, {**values, "channel": channel.value, "step": 1}, now=ctx.now())
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def get(ctx: Context, mailing_id: int, *, with_steps: bool = True) -> dict[str, Any]:
    """The mailing as :func:`to_json` shows it; ``with_steps=False`` leaves out
    its chain's steps (one read fewer, for the status line a page polls)."""
    with ctx.read() as conn:
        return to_json(conn, _load(conn, mailing_id), with_steps=with_steps, now=ctx.now())


def list_(ctx: Context, *, limit: int = 50, offset: int = 0,
          status: str | None = None) -> list[dict[str, Any]]:
    wanted = MailingStatus(status) if status in set(MailingStatus) else None
    with ctx.read() as conn:
        return [to_json(conn, m, with_steps=False, now=ctx.now())
                for m in store.list_(conn, limit=limit, offset=offset, status=wanted)]


def update(ctx: Context, mailing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    unknown = set(data) - set(EDITABLE)
    if unknown:
        raise InvalidInput(f"These fields cannot be changed: {', '.join(sorted(unknown))}.",
                           field=sorted(unknown)[0])
    if not isinstance(data.get("name") or "", str):
        raise InvalidInput("name must be a string.", field="name")
    now = ctx.now()
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        rules.check_editable(status=mailing.status, send_at=mailing.send_at, now=now)
        name = (data.get("name") or mailing.name).strip()
        values = _clean(data, name=name, channel=mailing.channel, quiet_window=ctx.settings.sms_quiet_hours)
        if "conversion" in values and "conversion" not in data:
            values.pop("conversion")  # a rename keeps the stored conversion block
        _check_refs(conn, values, mailing.channel)
        previous = lifecycle.previous_step(SqlTransaction(conn), mailing)
        if (mailing.status is MailingStatus.SCHEDULED and previous is not None
                and previous.finished_at is not None and "delay_hours" in values):
            # a scheduled later step goes at its chain time: a new delay moves it
            values["send_at"] = rules.chain_step_due(
                previous_finished_at=previous.finished_at, delay_hours=values["delay_hours"], now=now)
        store.edit(conn, mailing_id, values, now=now)
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def check_sending_domain(conn: sa.Connection, ctx: Context, from_email: str) -> None:
    """See :func:`tidings.engine.lifecycle.check_sending_domain`."""
    lifecycle.check_sending_domain(SqlTransaction(conn), ctx.policy, from_email)


def check_ready(conn: sa.Connection, ctx: Context, mailing: Mailing) -> None:
    """See :func:`tidings.engine.lifecycle.check_ready`."""
    lifecycle.check_ready(SqlTransaction(conn), ctx.policy, mailing)


def check_template_budget(conn: sa.Connection, ctx: Context, mailing: Mailing) -> None:
    """Render the mailing's message once for the sample customer and once for
    the first customer of its audience; raise ``InvalidInput(code=
    "template_too_costly", field="template_id")`` if either goes over the
    template's rendering budget (every message would). Does nothing for a
    mailing that is not startable or not complete: the lifecycle says why."""
    if mailing.status not in (MailingStatus.DRAFT, MailingStatus.SCHEDULED) or mailing.template_id is None \
            or (mailing.channel is Channel.EMAIL and not mailing.from_email) \
            or (mailing.segment_id is None and not mailing.is_later_step):
        return
    renderer = renderer_for(SqlTransaction(conn), mailing, secret=ctx.secret,
                            public_url=ctx.settings.public_url)
    first = customer_store.first_matching(conn, audience_where(conn, mailing))
    try:
        renderer.check_budget()
        if first is not None:
            renderer.check_budget(recipient_of(first))
    except InvalidInput as exc:
        raise InvalidInput(f"Template {mailing.template_id} cannot be sent: {exc.message}",
                           code=exc.code, field="template_id",
                           manager_message=f"Its template cannot be sent: {exc.message}") from exc


def _audit(conn: sa.Connection, ctx: Context, actor: Actor, action: str, mailing: Mailing,
           **detail: Any) -> None:
    audit.record(conn, actor, action, f"mailing {mailing.id} “{mailing.name}”",
                 {"mailing_id": mailing.id, **detail}, at=ctx.now())


def send_now(ctx: Context, mailing_id: int, *, actor: Actor = SYSTEM) -> dict[str, Any]:
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        if mailing.is_later_step:
            raise Conflict("A later chain step is sent by its chain, after the step before it.",
                           code="chain_step")
        check_template_budget(conn, ctx, mailing)
        lifecycle.start(SqlTransaction(conn), ctx.policy, mailing, Action.SEND, now=ctx.now())
        _audit(conn, ctx, actor, "mailing.send", mailing)
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def schedule(ctx: Context, mailing_id: int, send_at: datetime | None, *,
             actor: Actor = SYSTEM) -> dict[str, Any]:
    """See :func:`tidings.engine.lifecycle.schedule`."""
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        check_template_budget(conn, ctx, mailing)
        lifecycle.schedule(SqlTransaction(conn), ctx.policy, mailing, send_at, now=ctx.now())
        scheduled = _load(conn, mailing_id)
        _audit(conn, ctx, actor, "mailing.schedule", mailing, send_at=_iso(scheduled.send_at))
        return to_json(conn, scheduled, now=ctx.now())


def cancel(ctx: Context, mailing_id: int, *, actor: Actor = SYSTEM) -> dict[str, Any]:
    """See :func:`tidings.engine.lifecycle.cancel`."""
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        lifecycle.cancel(SqlTransaction(conn), mailing, now=ctx.now())
        _audit(conn, ctx, actor, "mailing.cancel", mailing, was=mailing.status.value)
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def resume(ctx: Context, mailing_id: int, *, actor: Actor) -> dict[str, Any]:
    """Interrupted or canceled -> sending, with the messages not yet sent."""
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        lifecycle.resume(SqlTransaction(conn), mailing, is_admin=actor.is_admin, now=ctx.now())
        _audit(conn, ctx, actor, "mailing.resume", mailing,
               interrupted=mailing.interrupt_code or mailing.status.value)
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def send_unknown(ctx: Context, mailing_id: int, *, actor: Actor) -> dict[str, Any]:
    """Sent, canceled or interrupted -> sending, to those whose message has an
    unknown outcome (some of them may get it twice) and those not yet sent."""
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        unknown = lifecycle.send_unknown(SqlTransaction(conn), mailing, is_admin=actor.is_admin,
                                         now=ctx.now())
        _audit(conn, ctx, actor, "mailing.send_unknown", mailing, unknown=unknown,
               was=mailing.status.value)
        return to_json(conn, _load(conn, mailing_id), now=ctx.now())


def _copy_values(mailing: Mailing) -> dict[str, Any]:
    return {"channel": mailing.channel.value, "segment_id": mailing.segment_id,
            "template_id": mailing.template_id, "from_email": mailing.from_email,
            "from_name": mailing.from_name, "reply_to": mailing.reply_to,
            "conversion": dict(mailing.conversion), "delay_hours": mailing.delay_hours,
            "condition": mailing.condition, "step": mailing.step,
            "quiet_hours": dict(mailing.quiet_hours) if mailing.quiet_hours else None}


def copy(ctx: Context, mailing_id: int) -> dict[str, Any]:
    """A new draft; copying a chain's first step copies the whole chain."""
    now = ctx.now()
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id)
        sources = store.chain(conn, mailing.chain_id) if not mailing.is_later_step else [mailing]
        first_id: int | None = None
        for source in sources:
            values = _copy_values(source) | {"name": f"Copy of {source.name}"}
            if first_id is None:
                values["step"] = 1
            new_id = store.insert(conn, values | {"chain_id": first_id}, now=now)
            first_id = first_id or new_id
        assert first_id is not None
        return to_json(conn, _load(conn, first_id), now=ctx.now())


def delete(ctx: Context, mailing_id: int, *, actor: Actor = SYSTEM) -> None:
    """Delete a draft, or a later chain step without statistics, and the steps after it."""
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id, lock=True)
        has_stats = store.has_messages(conn, mailing_id)
        if not rules.is_deletable(status=mailing.status, step=mailing.step, has_statistics=has_stats):
            raise Conflict(
                "Only a draft, or a chain step that has no statistics yet, can be deleted; "
                "cancel or copy this mailing instead.",
                code="not_deletable",
            )
        later = [s.id for s in store.chain(conn, mailing.chain_id) if s.step > mailing.step]
        if any(store.has_messages(conn, sid) for sid in later):
            raise Conflict("A later step of this chain already has statistics.", code="not_deletable")
        store.delete(conn, [mailing_id, *later])
        _audit(conn, ctx, actor, "mailing.delete", mailing, later_steps=later)


def add_step(ctx: Context, mailing_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Append a step (a draft mailing) to the chain that ``mailing_id`` belongs to;
    behind a step that is already sent it is scheduled at once for its chain time."""
    unknown = set(data) - {"template_id", "delay_hours", "condition", "name", "from_email",
                           "from_name", "reply_to", "conversion", "quiet_hours"}
    if unknown:
        raise InvalidInput(f"Unknown fields: {', '.join(sorted(unknown))}.", field=sorted(unknown)[0])
    if data.get("template_id") is None:
        raise InvalidInput("A step needs a template_id.", field="template_id",
                           manager_message="Choose a template for the step.")
    if not isinstance(data.get("name") or "", str):
        raise InvalidInput("name must be a string.", field="name")
    now = ctx.now()
    with ctx.tx() as conn:
        mailing = _load(conn, mailing_id)
        steps = store.chain(conn, mailing.chain_id)
        last = steps[-1]
        name = (data.get("name") or f"{steps[0].name} - step {last.step + 1}").strip()
        senders: dict[str, Any] = {k: data[k] for k in ("from_email", "from_name", "reply_to")
                                   if k in data}
        values = _clean(
            {"delay_hours": data.get("delay_hours", 24), "condition": data.get("condition", "all"),
             "name": name, "conversion": data.get("conversion", dict(last.conversion)),
             "template_id": data["template_id"], **senders,
             "quiet_hours": data.get("quiet_hours", dict(last.quiet_hours) if last.quiet_hours else None)},
            name=name, channel=mailing.channel, quiet_window=ctx.settings.sms_quiet_hours,
        )
        _check_refs(conn, values, mailing.channel)
        step_id = store.insert(conn, {
            **values, "channel": mailing.channel.value, "step": last.step + 1,
            "chain_id": mailing.chain_id, "segment_id": None,
            "from_email": values.pop("from_email", last.from_email),
            "from_name": values.pop("from_name", last.from_name),
            "reply_to": values.pop("reply_to", last.reply_to),
        }, now=now)
        if last.status is MailingStatus.SENT:
            lifecycle.schedule_next_step(SqlTransaction(conn), last, now=now)
        return to_json(conn, _load(conn, step_id), now=ctx.now())
