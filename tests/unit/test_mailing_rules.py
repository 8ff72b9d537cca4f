"""The mailing state machine, locks and chain rules (pure, no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tidings.domain import mailings as m
from tidings.domain.conversions import normalize_conversion
from tidings.domain.mailings import Action, Channel, InterruptCode, Mailing, MailingStatus
from tidings.domain.mailings import MailingStatus as S
from tidings.errors import Conflict, Forbidden, IllegalTransition, InvalidInput, MailingLocked

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


def test_send_now_moves_a_draft_to_sending():
    assert m.next_status(S.DRAFT, Action.SEND) is S.SENDING


def test_cancel_returns_a_scheduled_mailing_to_draft_and_cancels_a_sending_one_after_its_package():
    assert m.next_status(S.SCHEDULED, Action.CANCEL) is S.DRAFT
    # sending stays sending (canceling) until the package in flight is out
    assert m.next_status(S.SENDING, Action.CANCEL) is S.SENDING
    assert m.next_status(S.SENDING, Action.CANCEL_COMPLETE) is S.CANCELED
    assert m.next_status(S.INTERRUPTED, Action.CANCEL) is S.CANCELED


@pytest.mark.parametrize("status", [S.DRAFT, S.SENT, S.SCHEDULED])
def test_only_interrupted_or_canceled_mailings_resume(status):
    with pytest.raises(IllegalTransition):
        m.next_status(status, Action.RESUME)


def test_a_sent_mailing_cannot_be_sent_again():
    with pytest.raises(IllegalTransition):
        m.next_status(S.SENT, Action.SEND)


@pytest.mark.parametrize("status", [S.SENDING, S.SENT, S.CANCELED, S.INTERRUPTED])
def test_editing_after_sending_started_is_locked(status):
    with pytest.raises(MailingLocked):
        m.check_editable(status=status, send_at=None, now=NOW)


def test_a_scheduled_mailing_locks_five_minutes_before_its_time():
    m.check_editable(status=S.SCHEDULED, send_at=NOW + timedelta(minutes=5, seconds=1), now=NOW)
    with pytest.raises(MailingLocked):
        m.check_editable(status=S.SCHEDULED, send_at=NOW + timedelta(minutes=5), now=NOW)
    with pytest.raises(MailingLocked):
        m.check_editable(status=S.SCHEDULED, send_at=NOW + timedelta(minutes=1), now=NOW)


def test_scheduling_in_the_past_is_refused():
    with pytest.raises(InvalidInput):
        m.check_schedulable(status=S.DRAFT, send_at=NOW - timedelta(seconds=1), now=NOW)


def test_a_reputation_stop_needs_an_admin_to_resume():
    with pytest.raises(Forbidden):
        m.check_resume(status=S.INTERRUPTED, interrupt_code="reputation", is_admin=False)
    m.check_resume(status=S.INTERRUPTED, interrupt_code="reputation", is_admin=True)
    m.check_resume(status=S.INTERRUPTED, interrupt_code="technical_error", is_admin=False)


def test_delete_allows_drafts_and_later_steps_without_statistics():
    assert m.is_deletable(status=S.DRAFT, step=1, has_statistics=False)
    assert not m.is_deletable(status=S.SENT, step=1, has_statistics=True)
    assert m.is_deletable(status=S.SCHEDULED, step=2, has_statistics=False)
    assert not m.is_deletable(status=S.SENT, step=2, has_statistics=True)


def test_status_labels_read_as_the_contract_shows_them():
    assert m.label(S.SENDING, percent=42.7) == "Being sent 42%"
    assert m.label(S.SENDING, percent=40, canceling=True) == "Being sent 40%, canceling after this package"
    assert m.label(S.SCHEDULED, send_at=NOW) == "Scheduled for 2026-11-29 12:00 UTC"
    assert m.label(S.INTERRUPTED, interrupt_message="quota") == "Interrupted: quota"
    assert [m.label(s) for s in (S.DRAFT, S.SENT, S.CANCELED)] == ["Draft", "Sent", "Canceled"]


def test_progress_counts_every_handled_message():
    p = m.Progress(total=10, queued=2, sending=1, sent=4, failed=1, skipped=1, unknown=1)
    assert p.percent == 70.0
    assert not p.done
    # nothing to send yet (a draft) is 0%, not 100%
    assert m.Progress(total=0, queued=0, sending=0, sent=0, failed=0, skipped=0, unknown=0).percent == 0


def test_utm_values_are_checked_and_defaults_filled():
    conv = normalize_conversion(None, name="Autumn Sale!", channel="email")
    assert conv["utm"] == {"enabled": True, "utm_source": "tidings", "utm_medium": "email",
                           "utm_campaign": "autumn-sale"}
    assert conv["window_days"] == 7 and conv["basis"] == "received"
    with pytest.raises(InvalidInput) as err:
        normalize_conversion({"utm": {"utm_source": "news letter"}}, name="x", channel="email")
    assert err.value.field == "conversion.utm.utm_source"
    with pytest.raises(InvalidInput):
        normalize_conversion({"basis": "bought"}, name="x", channel="email")


class MailingMachine(RuleBasedStateMachine):
    """Random walks through the actions; the model below must agree with the table."""

    def __init__(self) -> None:
        super().__init__()
        self.status = S.DRAFT
        self.ever_started = False

    @rule(action=st.sampled_from(list(Action)))
    def act(self, action: Action) -> None:
        try:
            new = m.next_status(self.status, action)
        except IllegalTransition:
            assert (self.status, action) not in m.TRANSITIONS
            return
        if action is Action.RESUME:
            assert self.status in (S.INTERRUPTED, S.CANCELED)
        if new is S.SENDING:
            self.ever_started = True
        if self.ever_started:
            # once messages exist, the mailing never returns to draft or scheduled
            assert new not in (S.DRAFT, S.SCHEDULED)
        self.status = new

    @precondition(lambda self: self.status in m.STARTED)
    @rule()
    def started_mailings_are_locked(self) -> None:
        with pytest.raises(MailingLocked):
            m.check_editable(status=self.status, send_at=None, now=NOW)

    @invariant()
    def sent_is_final_but_for_sending_to_the_unknown(self) -> None:
        if self.status is S.SENT:
            assert m.allowed_actions(S.SENT) == frozenset({Action.SEND_UNKNOWN})


def test_send_unknown_is_offered_and_allowed_only_when_not_sending_and_some_are_unknown():
    def mailing(status: MailingStatus, **kw: object) -> Mailing:
        return Mailing(id=1, name="m", channel=Channel.EMAIL, status=status, **kw)  # type: ignore[arg-type]

    for status in (S.SENT, S.CANCELED, S.INTERRUPTED):
        assert "send_unknown" in m.actions(mailing(status), unknown=3)
        assert "send_unknown" not in m.actions(mailing(status), unknown=0)
        move = m.send_unknown(mailing(status), unknown=3, now=NOW, is_admin=False)
        assert (move.source, move.target) == (status, S.SENDING)
    for status in (S.DRAFT, S.SCHEDULED, S.SENDING):
        assert "send_unknown" not in m.actions(mailing(status), unknown=3)
    with pytest.raises(Conflict) as sending:
        m.send_unknown(mailing(S.SENDING), unknown=3, now=NOW, is_admin=True)
    assert sending.value.code == "mailing_sending"
    with pytest.raises(Conflict) as none:
        m.send_unknown(mailing(S.SENT), unknown=0, now=NOW, is_admin=True)
    assert none.value.code == "nothing_unknown"
    stopped = mailing(S.INTERRUPTED, interrupt_code=InterruptCode.REPUTATION.value)
    with pytest.raises(Forbidden):
        m.send_unknown(stopped, unknown=3, now=NOW, is_admin=False)
    assert m.send_unknown(stopped, unknown=3, now=NOW, is_admin=True).reset_guard


TestMailingMachine = MailingMachine.TestCase
