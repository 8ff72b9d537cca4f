"""The mailing state machine: statuses, the transition table, locks and chain rules.

A mailing moves only through :data:`TRANSITIONS`; any other move raises
:class:`~tidings.errors.IllegalTransition`. Every move, whether a person asks
for it or the system makes it, is computed here as a :class:`Move` by one
function per verb (:func:`start`, :func:`cancel`, :func:`interrupt`, ...);
``tidings.engine.lifecycle`` writes what they return, and nothing else
writes a mailing's status. Editing is allowed in ``draft`` and in
``scheduled`` until :data:`LOCK_BEFORE` ahead of ``send_at``; after that, and
once sending started, it raises :class:`~tidings.errors.MailingLocked`.

Pure: standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from tidings.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, MailingLocked

LOCK_BEFORE = timedelta(minutes=5)


class Channel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MailingStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"


class Action(enum.StrEnum):
    SEND = "send"  # Send now
    SCHEDULE = "schedule"  # a person, or the chain when the step before was sent
    START = "start"  # the scheduler reached send_at
    CANCEL = "cancel"
    CANCEL_COMPLETE = "cancel_complete"  # the package in flight is out after a cancel
    RESUME = "resume"
    INTERRUPT = "interrupt"
    FINISH = "finish"  # every recipient handled
    RESET = "reset"  # back to Draft: an earlier chain step was interrupted, or it could not start
    SEND_UNKNOWN = "send_unknown"  # send again to those whose message's outcome is unknown


class InterruptCode(enum.StrEnum):
    TECHNICAL_ERROR = "technical_error"
    QUOTA_EXHAUSTED = "quota_exhausted"
    REPUTATION = "reputation"


S, A = MailingStatus, Action

#: (status, action) -> new status. Nothing else is allowed.
TRANSITIONS: dict[tuple[MailingStatus, Action], MailingStatus] = {
    (S.DRAFT, A.SEND): S.SENDING,
    (S.DRAFT, A.SCHEDULE): S.SCHEDULED,
    (S.SCHEDULED, A.SEND): S.SENDING,
    (S.SCHEDULED, A.SCHEDULE): S.SCHEDULED,
    (S.SCHEDULED, A.START): S.SENDING,
    (S.SCHEDULED, A.CANCEL): S.DRAFT,
    (S.SCHEDULED, A.RESET): S.DRAFT,
    # Canceling: no new package starts, the one in flight goes out whole; the
    # status stays ``sending`` (labelled as canceling) until CANCEL_COMPLETE.
    (S.SENDING, A.CANCEL): S.SENDING,
    (S.SENDING, A.CANCEL_COMPLETE): S.CANCELED,
    (S.SENDING, A.INTERRUPT): S.INTERRUPTED,
    (S.SENDING, A.FINISH): S.SENT,
    (S.INTERRUPTED, A.RESUME): S.SENDING,
    (S.INTERRUPTED, A.CANCEL): S.CANCELED,
    (S.CANCELED, A.RESUME): S.SENDING,
    # Those left unknown by a worker that died are sent again (some may get it twice);
    # like resume, those not yet sent go too.
    (S.SENT, A.SEND_UNKNOWN): S.SENDING,
    (S.CANCELED, A.SEND_UNKNOWN): S.SENDING,
    (S.INTERRUPTED, A.SEND_UNKNOWN): S.SENDING,
    (S.DRAFT, A.RESET): S.DRAFT,
}

#: Statuses in which the audience is frozen and messages exist.
STARTED = frozenset({S.SENDING, S.SENT, S.CANCELED, S.INTERRUPTED})

#: Moves the system makes by itself; a person never asks for them.
AUTOMATIC = frozenset({A.START, A.INTERRUPT, A.FINISH, A.RESET, A.CANCEL_COMPLETE})

#: Who a later chain step goes to, among the recipients of the step before it.
CONDITIONS = ("all", "opened", "not_opened", "clicked", "not_clicked", "not_converted")


@dataclass(frozen=True, kw_only=True)
class Mailing:
    """A mailing as stored. ``chain_id`` is the id of its chain's first step."""

    id: int
    name: str
    channel: Channel
    status: MailingStatus
    segment_id: int | None = None
    template_id: int | None = None
    from_email: str | None = None
    from_name: str | None = None
    reply_to: str | None = None
    conversion: Mapping[str, Any] = field(default_factory=dict)
    send_at: datetime | None = None
    interrupt_code: str | None = None
    interrupt_message: str | None = None
    cancel_requested_at: datetime | None = None
    chain_id: int = 0
    step: int = 1
    delay_hours: float | None = None
    condition: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    #: SMS quiet hours ``{"enabled": bool, "window": "21:00-09:00"}``; None: none.
    quiet_hours: Mapping[str, Any] | None = None

    @property
    def canceling(self) -> bool:
        """Canceled while sending; it stops after the package in flight."""
        return self.status is S.SENDING and self.cancel_requested_at is not None

    @property
    def is_later_step(self) -> bool:
        return self.step > 1


@dataclass(frozen=True, kw_only=True)
class Move:
    """A status change to write: from ``source`` (compare-and-set) to ``target``,
    with the other columns that change with it. ``reset_guard``: the reputation
    guard starts a fresh window."""

    action: Action
    source: MailingStatus
    target: MailingStatus
    values: Mapping[str, Any] = field(default_factory=dict)
    reset_guard: bool = False


def next_status(status: MailingStatus, action: Action) -> MailingStatus:
    """The status after ``action``, or :class:`IllegalTransition`."""
    try:
        return TRANSITIONS[(status, action)]
    except KeyError:
        raise IllegalTransition(
            f"Cannot {action.value} a mailing whose status is {status.value}."
        ) from None


def allowed_actions(status: MailingStatus) -> frozenset[Action]:
    return frozenset(action for (s, action) in TRANSITIONS if s is status)


def _move(mailing: Mailing, action: Action, now: datetime, **values: Any) -> Move:
    return Move(action=action, source=mailing.status, target=next_status(mailing.status, action),
                values={**values, "updated_at": now})


# -- the verbs ------------------------------------------------------------------------


def start(mailing: Mailing, action: Action, *, now: datetime) -> Move:
    """Send now (``SEND``) or the scheduled time reached (``START``): sending begins."""
    return _move(mailing, action, now, started_at=now, interrupt_code=None, interrupt_message=None,
                 cancel_requested_at=None)


def schedule(mailing: Mailing, *, send_at: datetime, now: datetime) -> Move:
    """Scheduled for ``send_at`` (checked by :func:`check_schedulable` when a person asks)."""
    return _move(mailing, A.SCHEDULE, now, send_at=send_at)


def cancel(mailing: Mailing, *, now: datetime) -> Move:
    """Scheduled -> Draft; interrupted -> Canceled; sending -> canceling (still
    ``sending`` until :func:`complete_cancel`)."""
    if mailing.canceling:
        raise Conflict("This mailing is already being canceled: it stops after the package "
                       "in flight.", code="already_canceling")
    move = _move(mailing, A.CANCEL, now)
    if move.target is S.DRAFT:
        return Move(action=A.CANCEL, source=move.source, target=move.target,
                    values={**move.values, "send_at": None})
    if mailing.status is S.SENDING:
        return Move(action=A.CANCEL, source=move.source, target=move.target,
                    values={**move.values, "cancel_requested_at": now})
    return move


def complete_cancel(mailing: Mailing, *, now: datetime) -> Move:
    """A canceling mailing whose last started package is out becomes Canceled."""
    if not mailing.canceling:
        raise IllegalTransition("Only a mailing being canceled can finish canceling.")
    return _move(mailing, A.CANCEL_COMPLETE, now)


def interrupt(mailing: Mailing, code: InterruptCode, message: str, *, now: datetime) -> Move:
    """Sending stops for ``code``; a pending cancel is dropped (the reason is shown)."""
    return _move(mailing, A.INTERRUPT, now, interrupt_code=code.value, interrupt_message=message,
                 cancel_requested_at=None)


def resume(mailing: Mailing, *, now: datetime, is_admin: bool) -> Move:
    """Interrupted or canceled -> sending with those not yet sent. Only an admin
    resumes a reputation stop, and the guard then counts afresh."""
    check_resume(status=mailing.status, interrupt_code=mailing.interrupt_code, is_admin=is_admin)
    move = _move(mailing, A.RESUME, now, interrupt_code=None, interrupt_message=None,
                 cancel_requested_at=None)
    reset = mailing.interrupt_code == InterruptCode.REPUTATION
    return Move(action=A.RESUME, source=move.source, target=move.target, values=move.values,
                reset_guard=reset)


def send_unknown(mailing: Mailing, *, unknown: int, now: datetime, is_admin: bool) -> Move:
    """Sent, canceled or interrupted -> sending again, for the ``unknown``
    messages a worker that died left with no outcome (they may have been
    delivered, so some of those people may get it twice) and, as with resume,
    those not yet sent. Only an admin may do it to a reputation stop."""
    if mailing.status is S.SENDING:
        raise Conflict("The mailing is being sent; once it is sent, canceled or interrupted you can "
                       "send it to those whose message has an unknown outcome.", code="mailing_sending")
    next_status(mailing.status, A.SEND_UNKNOWN)
    if unknown <= 0:
        raise Conflict("No message of this mailing has an unknown outcome: there is nobody to send "
                       "it to again.", code="nothing_unknown")
    if mailing.interrupt_code == InterruptCode.REPUTATION and not is_admin:
        raise Forbidden(
            "This mailing was stopped for too many bounces or complaints; only an admin "
            "may send it again, after the cause is understood.",
            code="admin_required",
        )
    values: dict[str, Any] = {"interrupt_code": None, "interrupt_message": None,
                              "cancel_requested_at": None, "finished_at": None}
    move = _move(mailing, A.SEND_UNKNOWN, now, **values)
    return Move(action=A.SEND_UNKNOWN, source=move.source, target=move.target, values=move.values,
                reset_guard=mailing.interrupt_code == InterruptCode.REPUTATION)


def finish(mailing: Mailing, *, now: datetime) -> Move:
    """Every recipient handled: Sent."""
    return _move(mailing, A.FINISH, now, finished_at=now, cancel_requested_at=None)


def reset(mailing: Mailing, *, now: datetime, reason: str | None = None) -> Move:
    """Back to Draft: an earlier chain step was interrupted, or (with ``reason``,
    shown to the manager) it could not start at its time."""
    values: dict[str, Any] = {"send_at": None}
    if reason is not None:
        values |= {"interrupt_code": InterruptCode.TECHNICAL_ERROR.value, "interrupt_message": reason}
    return _move(mailing, A.RESET, now, **values)


def schedule_chain_step(step: Mailing, *, previous: Mailing, now: datetime) -> Move:
    """The chain schedules a later step for its chain time (:func:`chain_step_due`)."""
    if previous.finished_at is None:
        raise Conflict("The step before has not finished sending.", code="chain_step")
    return schedule(step, send_at=chain_step_due(previous_finished_at=previous.finished_at,
                                                 delay_hours=step.delay_hours, now=now), now=now)


# -- the rules the verbs and the services check ------------------------------------------


def chain_step_due(*, previous_finished_at: datetime, delay_hours: float | None,
                   now: datetime) -> datetime:
    """When a later chain step goes out: ``delay_hours`` (default 0) after the
    step before it finished, and never in the past."""
    return max(previous_finished_at + timedelta(hours=float(delay_hours or 0)), now)


def check_editable(*, status: MailingStatus, send_at: datetime | None, now: datetime) -> None:
    """Raise :class:`MailingLocked` unless the mailing may be edited at ``now``."""
    if status in STARTED:
        raise MailingLocked(
            "The mailing cannot be edited once sending has started; copy it to make a new one.",
        )
    if status is S.SCHEDULED and send_at is not None and now >= send_at - LOCK_BEFORE:
        raise MailingLocked(
            "A scheduled mailing cannot be edited in the 5 minutes before it is sent; "
            "cancel it first, which returns it to Draft.",
        )


def check_schedulable(*, status: MailingStatus, send_at: datetime, now: datetime) -> None:
    """Scheduling needs a future time; rescheduling is an edit, so it obeys the lock."""
    if send_at.tzinfo is None:
        raise InvalidInput("send_at must carry a timezone offset.", field="send_at")
    if send_at <= now:
        raise InvalidInput("send_at is in the past; choose a future time.", field="send_at",
                           manager_message="That time is in the past; choose a future time.")
    next_status(status, A.SCHEDULE)


def check_resume(*, status: MailingStatus, interrupt_code: str | None, is_admin: bool) -> None:
    next_status(status, A.RESUME)
    if interrupt_code == InterruptCode.REPUTATION and not is_admin:
        raise Forbidden(
            "This mailing was stopped for too many bounces or complaints; only an admin "
            "may resume it, after the cause is understood.",
            code="admin_required",
        )


def is_deletable(*, status: MailingStatus, step: int, has_statistics: bool) -> bool:
    """Drafts can be deleted; so can a later chain step that has no statistics."""
    if status is S.DRAFT:
        return True
    return step > 1 and not has_statistics and status is not S.SENDING


def actions(mailing: Mailing, *, previous_sent: bool = False, unknown: int = 0) -> list[str]:
    """What a person may ask of a mailing now, sorted: the transitions open from
    its status that are not automatic, and ``copy`` (always); ``send_unknown``
    only while ``unknown`` messages have no known outcome. A later chain step
    is sent by its chain, so it never offers ``send``, and offers ``schedule``
    only once the step before it was sent (to re-arm it after a cancel); a
    mailing being canceled cannot be canceled again."""
    offered = {a.value for a in allowed_actions(mailing.status) if a not in AUTOMATIC}
    if mailing.is_later_step:
        offered.discard(A.SEND.value)
        if not previous_sent:
            offered.discard(A.SCHEDULE.value)
    if mailing.canceling:
        offered.discard(A.CANCEL.value)
    if unknown <= 0:
        offered.discard(A.SEND_UNKNOWN.value)
    return sorted(offered | {"copy"})


def label(status: MailingStatus, *, percent: float | None = None, send_at: datetime | None = None,
          interrupt_message: str | None = None, canceling: bool = False,
          paused_until: datetime | None = None) -> str:
    """The status line a manager reads, as in the contract's table; an SMS
    mailing waiting for its recipients' quiet hours to end says until when."""
    if status is S.SENDING:
        text = f"Being sent {int(percent or 0)}%"
        if canceling:
            return f"{text}, canceling after this package"
        if paused_until is not None:
            return f"{text}, paused for quiet hours until {paused_until.strftime('%Y-%m-%d %H:%M %Z')}"
        return text
    if status is S.SCHEDULED and send_at is not None:
        return f"Scheduled for {send_at.strftime('%Y-%m-%d %H:%M %Z')}"
    if status is S.INTERRUPTED:
        return f"Interrupted: {interrupt_message}" if interrupt_message else "Interrupted"
    return LABELS[status]


#: The status names a manager reads, where no percentage or date goes with them.
LABELS = {S.DRAFT: "Draft", S.SCHEDULED: "Scheduled", S.SENDING: "Being sent", S.SENT: "Sent",
          S.CANCELED: "Canceled", S.INTERRUPTED: "Interrupted"}


@dataclass(frozen=True, kw_only=True)
class Progress:
    """Counts read from the message rows; ``unknown`` were in flight when a worker died."""

    total: int
    queued: int
    sending: int
    sent: int
    failed: int
    skipped: int
    unknown: int

    @property
    def handled(self) -> int:
        return self.sent + self.failed + self.skipped + self.unknown

    @property
    def percent(self) -> float:
        """The share handled; 0 while there is nothing (a draft has no messages yet)."""
        if self.total == 0:
            return 0.0
        return round(100.0 * self.handled / self.total, 1)

    @property
    def done(self) -> bool:
        """Nothing is left to send: no message queued or in flight."""
        return self.queued == 0 and self.sending == 0
