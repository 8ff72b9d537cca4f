"""The mailing state machine: statuses, the transition table, locks and chain rules.

A mailing moves only through :data:`TRANSITIONS`; any other move raises
:class:`~tidings.errors.IllegalTransition`. Editing is allowed in ``draft``
and in ``scheduled`` until :data:`LOCK_BEFORE` ahead of ``send_at``; after
that, and once sending started, it raises :class:`~tidings.errors.MailingLocked`.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from tidings.errors import Forbidden, IllegalTransition, InvalidInput, MailingLocked

LOCK_BEFORE = timedelta(minutes=5)


class MailingStatus(enum.StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    SENT = "sent"
    CANCELED = "canceled"
    INTERRUPTED = "interrupted"


class Action(enum.StrEnum):
    SEND = "send"  # Send now
    SCHEDULE = "schedule"
    START = "start"  # the scheduler reached send_at
    CANCEL = "cancel"
    CANCEL_COMPLETE = "cancel_complete"  # the package in flight is out after a cancel
    RESUME = "resume"
    INTERRUPT = "interrupt"
    FINISH = "finish"  # every recipient handled
    RESET = "reset"  # an earlier chain step was interrupted


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
    (S.DRAFT, A.RESET): S.DRAFT,
}

#: Statuses in which the audience is frozen and messages exist.
STARTED = frozenset({S.SENDING, S.SENT, S.CANCELED, S.INTERRUPTED})


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


def label(status: MailingStatus, *, percent: float | None = None, send_at: datetime | None = None,
          interrupt_message: str | None = None, canceling: bool = False) -> str:
    """The status line a manager reads, as in the contract's table."""
    if status is S.SENDING:
        text = f"Being sent {int(percent or 0)}%"
        return f"{text}, canceling after this package" if canceling else text
    if status is S.SCHEDULED and send_at is not None:
        return f"Scheduled for {send_at.strftime('%Y-%m-%d %H:%M %Z')}"
    if status is S.INTERRUPTED:
        return f"Interrupted: {interrupt_message}" if interrupt_message else "Interrupted"
    return {S.DRAFT: "Draft", S.SENT: "Sent", S.CANCELED: "Canceled",
            S.SCHEDULED: "Scheduled"}[status]


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


def chain_step_due(*, previous_finished_at: datetime, delay_hours: float | None,
                   now: datetime) -> datetime:
    """When a later chain step goes out: ``delay_hours`` (default 0) after the
    step before it finished, and never in the past."""
    return max(previous_finished_at + timedelta(hours=float(delay_hours or 0)), now)


CONDITIONS = ("all", "opened", "not_opened", "clicked", "not_clicked", "not_converted")
BASES = ("received", "opened", "clicked")


UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_UTM_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def slug(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text.strip()).strip("-").lower()
    return cleaned[:60] or "mailing"


def normalize_conversion(
    value: dict[str, Any] | None, *, name: str, channel: str
) -> dict[str, Any]:
    """The conversion block with defaults filled in, or :class:`InvalidInput`.

    ``window_days`` 1..365 (default 7); ``basis`` received|opened|clicked
    (default received); ``utm`` is on by default with ``utm_source=tidings``,
    ``utm_medium=<channel>``, ``utm_campaign=<slug of the name>``; ``{"utm":
    {"enabled": false}}`` turns it off. UTM values: Latin letters, digits, ``_-.``.
    """
    value = dict(value or {})
    unknown = set(value) - {"window_days", "basis", "utm"}
    if unknown:
        raise InvalidInput(
            f"Unknown conversion fields: {', '.join(sorted(unknown))}.", field="conversion"
        )
    window = value.get("window_days", 7)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 365:
        raise InvalidInput(
            "conversion.window_days must be a whole number of days from 1 to 365.",
            field="conversion.window_days",
            manager_message="Count orders placed within 1 to 365 days of the message.",
        )
    basis = value.get("basis", "received")
    if basis not in BASES:
        raise InvalidInput(
            f"conversion.basis must be one of {', '.join(BASES)}.", field="conversion.basis"
        )
    utm_in = value.get("utm") or {}
    if not isinstance(utm_in, dict):
        raise InvalidInput("conversion.utm must be an object.", field="conversion.utm")
    enabled = utm_in.get("enabled", True)
    utm: dict[str, Any] = {"enabled": bool(enabled)}
    if enabled:
        defaults = {"utm_source": "tidings", "utm_medium": channel, "utm_campaign": slug(name)}
        for key in UTM_KEYS:
            raw = utm_in.get(key, defaults.get(key))
            if raw in (None, ""):
                if key in defaults:
                    raise InvalidInput(
                        f"conversion.utm.{key} is required when UTM tags are on.",
                        field=f"conversion.utm.{key}",
                    )
                continue
            if not isinstance(raw, str) or not _UTM_VALUE.match(raw):
                raise InvalidInput(
                    f"conversion.utm.{key} may hold only Latin letters, digits and _ - . (got {raw!r}).",
                    field=f"conversion.utm.{key}",
                )
            utm[key] = raw
        extra = set(utm_in) - set(UTM_KEYS) - {"enabled"}
        if extra:
            raise InvalidInput(
                f"Unknown UTM fields: {', '.join(sorted(extra))}.", field="conversion.utm"
            )
    return {"window_days": window, "basis": basis, "utm": utm}
