"""The SMS side of the sending worker: parts, quota per part, quiet hours.

A mix-in of :class:`tidings.engine.worker.Worker`. SMS go group by group: each
group's parts are reserved in the transaction that marks it in flight, the
parts the SMSC accepted are charged and kept for delivery receipts, and
recipients in their quiet hours are held until their morning.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import TYPE_CHECKING

from tidings.config import Settings
from tidings.domain import sms
from tidings.domain.mailings import Channel, Mailing
from tidings.domain.messages import AcceptedPart, Package, Recipient, quota_message
from tidings.domain.phones import number_time_zones
from tidings.domain.quiet_hours import QuietHours, recipient_zones, wait_until, zone
from tidings.engine import lifecycle
from tidings.engine.foreground import Foreground
from tidings.engine.ports import LeaseLost, Store, Transaction
from tidings.engine.render import SmsRenderer
from tidings.engine.window import Group, render_each
from tidings.transports.base import Outcome, Result

log = logging.getLogger("tidings.worker")


class SmsSending:
    """The worker's SMS steps; the worker provides what is declared here."""

    store: Store
    settings: Settings
    owner: str
    clock: Callable[[], datetime]
    foreground: Foreground | None

    if TYPE_CHECKING:
        def _lease_until(self) -> datetime: ...

    def _prepare_sms_group(self, package: Package, renderer: SmsRenderer, size: int) -> Group | None:
        """The next queued messages that may go now, rendered, with their parts.
        Those in their quiet hours are held (committed) and the next ones read."""
        quiet = renderer.quiet_hours
        now = self.clock()
        if quiet is not None:
            with self.store.transaction() as tx:
                tx.release_held(package, now)
        while True:
            with self.store.transaction() as tx:
                recipients = tx.next_group(package, size)
            if not recipients:
                return None
            if quiet is not None:
                held = {r.id: until for r in recipients
                        if (until := self._quiet_until(r, quiet, now)) is not None}
                if held:
                    with self.store.transaction() as tx:
                        tx.hold_messages(held)
                    continue
            envelopes, broken = render_each(renderer, recipients, self.foreground)
            parts = {env.message_id: sms.summarize(env.data.decode("utf-8", "replace")).parts
                     for env in envelopes}
            return Group(recipients=recipients, envelopes=envelopes, broken=broken, parts=parts)

    def _quiet_until(self, recipient: Recipient, quiet: QuietHours, now: datetime) -> datetime | None:
        """When the recipient's quiet hours end, or None when it may go now."""
        shop = self.settings.timezone
        zones = recipient_zones(attributes=recipient.attributes,
                                number_zones=number_time_zones(recipient.address), shop_zone=shop)
        shop_zone = zone(shop)
        assert shop_zone is not None  # checked by the settings
        return wait_until(now, quiet, zones, shop_zone)

    def _mark_sms_in_flight(self, package: Package, group: Group) -> Group | None:
        """Reserve the parts of as many messages of the group as the SMS balance
        pays for (in order) and mark those in flight, in one transaction. The
        group that goes (all or a first part of it), or None when not even its
        first message is paid for."""
        with self.store.transaction() as tx:
            if not tx.renew_lease(package.id, owner=self.owner, until=self._lease_until()):
                raise LeaseLost
            balance = tx.quota_balance("sms", lock=True)
            going = group.recipients
            if balance is not None:
                costs = itertools.accumulate(group.parts.get(r.id, 0) for r in group.recipients)
                going = [r for r, total in zip(group.recipients, costs, strict=True) if total <= balance]
                if not going:
                    return None
            paid = Group(recipients=going, broken={k: v for k, v in group.broken.items()
                                                    if k <= going[-1].id},
                          envelopes=[e for e in group.envelopes if e.message_id <= going[-1].id],
                          parts={k: v for k, v in group.parts.items() if k <= going[-1].id})
            paid.reserved = sum(paid.parts.values()) if balance is not None else 0
            if paid.reserved:
                tx.change_quota("sms", -paid.reserved)
                tx.add_reservation(package.id, paid.reserved)
            if tx.mark_in_flight(package, going[0].id, going[-1].id) != len(going):
                raise LeaseLost
        return paid

    def _sms_short(self, group: Group) -> str:
        with self.store.transaction() as tx:
            balance = tx.quota_balance("sms") or 0
        first = group.parts.get(group.recipients[0].id, 1)
        return quota_message("sms", balance, first)

    def _record_sms(self, tx: Transaction, package: Package, group: Group, outcomes: Sequence[Outcome],
                    *, now: datetime) -> None:
        """Keep the accepted parts' ids; charge the parts the SMSC accepted (all
        of a sent message, those known of an uncertain one) and give the rest
        of the group's reservation back."""
        accepted = [AcceptedPart(message_id=env.message_id, part=n, remote_id=remote_id)
                    for env, outcome in zip(group.envelopes, outcomes, strict=True)
                    for n, remote_id in enumerate(outcome.remote_ids, start=1)]
        tx.record_parts(accepted, now=now)
        charged = sum(group.parts.get(env.message_id, 0) if outcome.result is Result.SENT
                      else len(outcome.remote_ids)
                      for env, outcome in zip(group.envelopes, outcomes, strict=True))
        if group.reserved:
            tx.take_reservation(package.id, group.reserved)
            tx.change_quota("sms", group.reserved - charged)

    def _held_back(self, package: Package, mailing: Mailing) -> bool:
        """When only messages held for quiet hours are left, the package goes back
        to pending, not to be claimed before the first may go. True if it did."""
        if mailing.channel is not Channel.SMS:
            return False
        now = self.clock()
        with self.store.transaction() as tx:
            until = tx.earliest_hold(package)
            if until is None:
                return False
            tx.mailing(mailing.id, lock=True)
            tx.change_quota(mailing.channel, tx.close_package(package.id, done=False, now=now))
            tx.hold_package(package.id, until)
            lifecycle.complete_cancel(tx, mailing.id, now=now)
        log.info("package %s of mailing %s waits for quiet hours until %s", package.id, mailing.id,
                 until.isoformat())
        return True
