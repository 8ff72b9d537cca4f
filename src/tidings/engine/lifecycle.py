"""Every status change of a mailing, one verb each, in one place.

Each verb asks the domain for the :class:`~tidings.domain.mailings.Move`
(which consults the transition table) and writes it with a compare-and-set on
the status, through the engine's :class:`~tidings.engine.ports.Transaction`,
in the caller's transaction. Nothing else writes a mailing's status.

============================  ================================  ==========================
verb                          moves                             called by
============================  ================================  ==========================
:func:`start`                 draft/scheduled -> sending        Send now, the scheduler
:func:`schedule`              draft/scheduled -> scheduled      Schedule
:func:`cancel`                scheduled -> draft,               Cancel
                              interrupted -> canceled,
                              sending -> sending (canceling)
:func:`complete_cancel`       sending (canceling) -> canceled   cancel, the worker closing
                                                                the last started package
:func:`interrupt`             sending -> interrupted            worker (technical error,
                                                                quota), reputation guard
:func:`resume`                interrupted/canceled -> sending   Resume
:func:`send_unknown`          sent/canceled/interrupted ->      Send to the unknown
                              sending (unknown ones queued)
:func:`finish`                sending -> sent                   worker, resume, start
:func:`schedule_next_step`    draft -> scheduled (next step)    finish
:func:`reset_later_steps`     scheduled -> draft (later steps)  interrupt
:func:`unschedule`            scheduled -> draft, with reason   the scheduler, when a start
                                                                is refused
============================  ================================  ==========================
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime

from tidings.config import Settings
from tidings.domain import mailings as rules
from tidings.domain.mailings import Action, Channel, InterruptCode, Mailing, MailingStatus, Move
from tidings.engine.ports import Transaction
from tidings.errors import Conflict, InvalidInput, NotFound

log = logging.getLogger("tidings.lifecycle")


@dataclass(frozen=True, kw_only=True)
class SendingPolicy:
    """What a start checks beyond the state machine (from the settings)."""

    package_size: int
    require_verified_domain: bool = True
    outbox: bool = False  # mail goes to a file:// outbox: no domain check

    @classmethod
    def from_settings(cls, settings: Settings) -> SendingPolicy:
        return cls(package_size=settings.package_size,
                   require_verified_domain=settings.require_verified_domain,
                   outbox=settings.smtp_url.startswith("file://"))


def load(tx: Transaction, mailing_id: int, *, lock: bool = False) -> Mailing:
    mailing = tx.mailing(mailing_id, lock=lock)
    if mailing is None:
        raise NotFound(f"There is no mailing {mailing_id}.", code="mailing_not_found")
    return mailing


def _write(tx: Transaction, mailing: Mailing, move: Move) -> None:
    if not tx.write_move(mailing.id, move):
        raise Conflict("The mailing changed meanwhile; reload it.", code="concurrent_change")


# -- readiness ---------------------------------------------------------------------------


def check_sending_domain(tx: Transaction, policy: SendingPolicy, from_email: str) -> None:
    """Raise ``Conflict(code="domain_not_verified")`` unless mail from
    ``from_email`` may go out: its domain is verified, or verification is not
    required, or mail goes to a ``file://`` outbox."""
    if not policy.require_verified_domain or policy.outbox:
        return
    domain = from_email.rsplit("@", 1)[1].lower()
    verified = tx.domain_verified(domain)
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


#: How the manager's messages name a missing field.
_MISSING = {"segment_id": "a segment", "template_id": "a template", "from_email": "a From address"}


def check_ready(tx: Transaction, policy: SendingPolicy, mailing: Mailing) -> None:
    """Everything a mailing needs before it can start (or be test-sent).

    Raises ``InvalidInput(code="mailing_incomplete")`` naming the first missing
    field, and for email :func:`check_sending_domain`'s ``Conflict``."""
    missing = [f for f in ("segment_id", "template_id")
               if getattr(mailing, f) is None and not mailing.is_later_step]
    if mailing.template_id is None:
        missing = sorted(set(missing) | {"template_id"})
    if mailing.channel is Channel.EMAIL and not mailing.from_email:
        missing.append("from_email")
    if missing:
        raise InvalidInput(f"The mailing is not ready to send: set {', '.join(missing)} first.",
                           code="mailing_incomplete", field=missing[0],
                           manager_message="It is not ready to send: choose "
                           f"{' and '.join(_MISSING[f] for f in missing)} first.")
    if mailing.channel is Channel.EMAIL:
        assert mailing.from_email is not None
        check_sending_domain(tx, policy, mailing.from_email)


def empty_audience(mailing: Mailing) -> Conflict:
    channel = "email" if mailing.channel is Channel.EMAIL else "SMS"
    text = (f"Nobody in this mailing's segment can receive {channel} now (no address, "
            "unsubscribed, bounced or complained): there is nobody to send it to. "
            "Choose another segment, or add customers to this one.")
    return Conflict(text, code="empty_audience", manager_message=text)


# -- the verbs ------------------------------------------------------------------------


def start(tx: Transaction, policy: SendingPolicy, mailing: Mailing, action: Action, *,
          now: datetime) -> None:
    """Freeze the audience, cut packages and move to ``sending``. A first step
    that nobody can receive is refused (``Conflict(code="empty_audience")``; the
    caller's transaction is then rolled back); a later step whose condition
    leaves nobody is Sent to nobody, and its chain goes on."""
    move = rules.start(mailing, action, now=now)
    check_ready(tx, policy, mailing)
    _write(tx, mailing, move)
    if tx.freeze_audience(mailing, package_size=policy.package_size) == 0 and not mailing.is_later_step:
        raise empty_audience(mailing)
    finish(tx, mailing.id, now=now)


def schedule(tx: Transaction, policy: SendingPolicy, mailing: Mailing, send_at: datetime | None, *,
             now: datetime) -> None:
    """Draft or scheduled -> scheduled at ``send_at`` (a future time). A later
    chain step can be (re)scheduled once the step before it was sent (e.g.
    after a cancel returned it to Draft); without ``send_at`` it goes at its
    chain time."""
    if mailing.status is MailingStatus.SCHEDULED:
        rules.check_editable(status=mailing.status, send_at=mailing.send_at, now=now)
    previous = previous_step(tx, mailing)
    if previous is not None:
        if previous.status is not MailingStatus.SENT:
            raise Conflict("A later chain step can only be scheduled once the step before "
                           "it has been sent; until then its chain schedules it.",
                           code="chain_step")
        if send_at is None:
            move = rules.schedule_chain_step(mailing, previous=previous, now=now)
            check_ready(tx, policy, mailing)
            _write(tx, mailing, move)
            return
    if send_at is None:
        raise InvalidInput("send_at is required: the date and time to send, ISO 8601 with "
                           "a UTC offset.", field="send_at")
    rules.check_schedulable(status=mailing.status, send_at=send_at, now=now)
    check_ready(tx, policy, mailing)
    if not mailing.is_later_step and tx.count_receivable(mailing) == 0:
        raise empty_audience(mailing)
    _write(tx, mailing, rules.schedule(mailing, send_at=send_at, now=now))


def cancel(tx: Transaction, mailing: Mailing, *, now: datetime) -> None:
    """Scheduled -> Draft; interrupted -> Canceled; sending -> canceling: no new
    package starts, and it shows Canceled once the package in flight is out
    (at once when no package is being sent)."""
    _write(tx, mailing, rules.cancel(mailing, now=now))
    if mailing.status is MailingStatus.SENDING:
        complete_cancel(tx, mailing.id, now=now)


def complete_cancel(tx: Transaction, mailing_id: int, *, now: datetime) -> bool:
    """A canceling mailing becomes Canceled when no package of it is being sent.
    The caller holds the mailing's lock."""
    mailing = tx.mailing(mailing_id)
    if mailing is None or not mailing.canceling or tx.has_active_packages(mailing_id):
        return False
    return tx.write_move(mailing_id, rules.complete_cancel(mailing, now=now))


def interrupt(tx: Transaction, mailing_id: int, code: InterruptCode, message: str, *,
              now: datetime) -> bool:
    """sending -> interrupted; the chain's later steps go back to Draft. False
    when the mailing was not sending (someone else moved it first)."""
    mailing = tx.mailing(mailing_id)
    if mailing is None or mailing.status is not MailingStatus.SENDING:
        return False
    if not tx.write_move(mailing_id, rules.interrupt(mailing, code, message, now=now)):
        return False
    log.warning("mailing %s interrupted (%s): %s", mailing_id, code.value, message)
    reset_later_steps(tx, mailing, now=now)
    return True


def resume(tx: Transaction, mailing: Mailing, *, is_admin: bool, now: datetime) -> None:
    """Interrupted or canceled -> sending, with the messages not yet sent."""
    _write(tx, mailing, rules.resume(mailing, now=now, is_admin=is_admin))
    finish(tx, mailing.id, now=now)


def send_unknown(tx: Transaction, mailing: Mailing, *, is_admin: bool, now: datetime) -> int:
    """Sent, canceled or interrupted -> sending, with the messages whose outcome
    is unknown queued again (some of those people may already have it) and,
    as with resume, those not yet sent. Returns how many were unknown."""
    if tx.has_active_packages(mailing.id):
        raise Conflict("A worker is still finishing a package of this mailing; try again in a "
                       "minute.", code="mailing_sending")
    unknown = tx.count_unknown(mailing.id)
    _write(tx, mailing, rules.send_unknown(mailing, unknown=unknown, now=now, is_admin=is_admin))
    tx.requeue_unknown(mailing.id)
    return unknown


def finish(tx: Transaction, mailing_id: int, *, now: datetime) -> bool:
    """``sending`` -> ``sent`` when nothing is left queued or in flight; the
    chain's next step is then scheduled. The caller holds the mailing's lock."""
    mailing = tx.mailing(mailing_id)
    if mailing is None or mailing.status is not MailingStatus.SENDING or tx.left_to_send(mailing_id):
        return False
    if not tx.write_move(mailing_id, rules.finish(mailing, now=now)):
        return False
    sent = tx.mailing(mailing_id)
    assert sent is not None
    schedule_next_step(tx, sent, now=now)
    return True


def schedule_next_step(tx: Transaction, mailing: Mailing, *, now: datetime) -> None:
    """When a step has been sent, the next one (a draft) is scheduled for its chain time."""
    nxt = next((s for s in tx.chain(mailing.chain_id) if s.step == mailing.step + 1), None)
    if nxt is None or nxt.status is not MailingStatus.DRAFT:
        return
    tx.write_move(nxt.id, rules.schedule_chain_step(nxt, previous=mailing, now=now))


def reset_later_steps(tx: Transaction, mailing: Mailing, *, now: datetime) -> None:
    """The chain's scheduled steps after ``mailing`` go back to Draft."""
    for later in tx.chain(mailing.chain_id):
        if later.step > mailing.step and later.status is MailingStatus.SCHEDULED:
            tx.write_move(later.id, rules.reset(later, now=now))


def unschedule(tx: Transaction, mailing_id: int, reason: str, *, now: datetime) -> bool:
    """A scheduled mailing that cannot start at its time goes back to Draft,
    saying why."""
    mailing = tx.mailing(mailing_id)
    if mailing is None or mailing.status is not MailingStatus.SCHEDULED:
        return False
    return tx.write_move(mailing_id, rules.reset(mailing, now=now,
                                                 reason=f"Could not start at its time: {reason}"))


def previous_step(tx: Transaction, mailing: Mailing) -> Mailing | None:
    if not mailing.is_later_step:
        return None
    return next((s for s in tx.chain(mailing.chain_id) if s.step == mailing.step - 1), None)
