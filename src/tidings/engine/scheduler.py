"""The scheduler: starts each scheduled mailing once its time has come.

Any number of workers run it; each due mailing starts exactly once, because
the start is a compare-and-set on its status. A mailing that cannot start
(its sending domain lost verification, nobody can receive it any more) goes
back to Draft saying why, instead of being tried again and again.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tidings.domain.mailings import Action, MailingStatus
from tidings.engine import lifecycle
from tidings.engine.ports import Store
from tidings.errors import TidingsError


def start_due(store: Store, policy: lifecycle.SendingPolicy, clock: Callable[[], datetime]) -> int:
    """Start every scheduled mailing whose time has come; returns how many started."""
    with store.transaction() as tx:
        due = tx.scheduled_due(clock())
    started = 0
    for mailing_id in due:
        try:
            with store.transaction() as tx:
                mailing = tx.mailing(mailing_id, lock=True)
                now = clock()
                if mailing is None or mailing.status is not MailingStatus.SCHEDULED \
                        or mailing.send_at is None or mailing.send_at > now:
                    continue
                lifecycle.start(tx, policy, mailing, Action.START, now=now)
                started += 1
        except TidingsError as exc:
            with store.transaction() as tx:
                lifecycle.unschedule(tx, mailing_id, exc.message, now=clock())
    return started
