"""The engine's storage port (:mod:`tidings.engine.ports`) on SQLAlchemy.

:class:`SqlStore` opens transactions on an engine; :class:`SqlTransaction`
answers the port's questions on one connection, through the store modules
that hold the SQL (``mailings``, ``packages``, ``audience``, ``quotas``,
``feedback``, ``meta``). Services that already hold a connection wrap it in
a :class:`SqlTransaction` to call the lifecycle verbs in their own
transaction.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from tidings.domain.mailings import Mailing, Move
from tidings.domain.messages import AcceptedPart, Failure, Package, Recipient
from tidings.domain.reputation import Counts
from tidings.domain.templates import Template
from tidings.store import audience, feedback, meta, packages, quotas, sms
from tidings.store import domains as domain_store
from tidings.store import mailings as mailing_store
from tidings.store import templates as template_store
from tidings.store.tables import domains


class SqlTransaction:
    """The port's operations on one connection (inside its transaction)."""

    def __init__(self, conn: sa.Connection) -> None:
        self.conn = conn

    # -- mailings
    def mailing(self, mailing_id: int, *, lock: bool = False) -> Mailing | None:
        return mailing_store.get(self.conn, mailing_id, lock=lock)

    def chain(self, chain_id: int) -> list[Mailing]:
        return mailing_store.chain(self.conn, chain_id)

    def write_move(self, mailing_id: int, move: Move) -> bool:
        return mailing_store.write_move(self.conn, mailing_id, move)

    def scheduled_due(self, now: datetime) -> list[int]:
        return mailing_store.due_scheduled(self.conn, now)

    def domain_verified(self, domain: str) -> bool | None:
        verified: bool | None = self.conn.execute(
            sa.select(domains.c.verified).where(domains.c.domain == domain)
        ).scalar_one_or_none()
        return verified

    # -- the audience
    def freeze_audience(self, mailing: Mailing, *, package_size: int) -> int:
        return audience.freeze(self.conn, mailing, package_size=package_size)

    def count_receivable(self, mailing: Mailing) -> int:
        return audience.count_receivable(self.conn, mailing)

    def left_to_send(self, mailing_id: int) -> bool:
        return packages.left_to_send(self.conn, mailing_id)

    def has_active_packages(self, mailing_id: int) -> bool:
        return packages.has_active_packages(self.conn, mailing_id)

    def count_unknown(self, mailing_id: int) -> int:
        return packages.count_unknown(self.conn, mailing_id)

    def requeue_unknown(self, mailing_id: int) -> int:
        return packages.requeue_unknown(self.conn, mailing_id)

    # -- packages
    def claim_package(self, *, owner: str, now: datetime) -> Package | None:
        return packages.claim_package(self.conn, owner=owner, now=now)

    def abandon_in_flight(self, package: Package) -> int:
        return packages.abandon_in_flight(self.conn, package)

    def count_queued(self, package: Package) -> int:
        return packages.count_queued(self.conn, package)

    def lease_package(self, package: Package, *, owner: str, until: datetime, now: datetime,
                      reserved: int) -> None:
        packages.lease(self.conn, package, owner=owner, until=until, now=now, reserved=reserved)

    def renew_lease(self, package_id: int, *, owner: str, until: datetime) -> bool:
        return packages.renew(self.conn, package_id, owner=owner, until=until)

    def next_group(self, package: Package, limit: int, *, after: int = 0) -> list[Recipient]:
        return packages.next_group(self.conn, package, limit, after=after)

    def mark_in_flight(self, package: Package, first_id: int, last_id: int) -> int:
        return packages.mark_in_flight(self.conn, package, first_id, last_id)

    def mark_ids_in_flight(self, package: Package, ids: Sequence[int]) -> int:
        return packages.mark_ids_in_flight(self.conn, package, ids)

    def record_sent(self, package: Package, *, sent: Sequence[int], failures: Sequence[Failure],
                    now: datetime) -> None:
        packages.record_sent(self.conn, package, sent=sent, failures=failures, now=now)

    def record_results(self, package: Package, *, first_id: int, last_id: int,
                       failures: Sequence[Failure], now: datetime) -> None:
        packages.record_results(self.conn, package, first_id=first_id, last_id=last_id,
                                failures=failures, now=now)

    def take_reservation(self, package_id: int, amount: int) -> None:
        packages.take_reservation(self.conn, package_id, amount)

    def close_package(self, package_id: int, *, done: bool, now: datetime) -> int:
        return packages.close_package(self.conn, package_id, done=done, now=now)

    def add_reservation(self, package_id: int, amount: int) -> None:
        packages.add_reservation(self.conn, package_id, amount)

    # -- SMS
    def record_parts(self, parts: Sequence[AcceptedPart], *, now: datetime) -> None:
        sms.record_parts(self.conn, parts, now=now)

    def release_held(self, package: Package, now: datetime) -> int:
        return packages.release_held(self.conn, package, now)

    def hold_messages(self, until: Mapping[int, datetime]) -> None:
        packages.hold_messages(self.conn, dict(until))

    def earliest_hold(self, package: Package) -> datetime | None:
        return packages.earliest_hold(self.conn, package)

    def hold_package(self, package_id: int, until: datetime) -> None:
        packages.hold_package(self.conn, package_id, until)

    def sms_link(self, mailing_id: int, url: str) -> int:
        return sms.link_number(self.conn, mailing_id, url)

    # -- the guard
    def add_guard_counts(self, mailing_id: int, *, sent: int, failed: int) -> None:
        mailing_store.add_guard_counts(self.conn, mailing_id, sent=sent, failed=failed)

    def guard_counts(self, mailing_id: int) -> Counts:
        return Counts(**mailing_store.guard_counts(self.conn, mailing_id))

    # -- quota
    def quota_balance(self, channel: str, *, lock: bool = False) -> int | None:
        return quotas.quota_balance(self.conn, channel, for_update=lock)

    def change_quota(self, channel: str, delta: int) -> None:
        quotas.change_balance(self.conn, channel, delta)

    # -- customers
    def hard_bounce(self, customer_id: int, address: str, *, now: datetime) -> None:
        feedback.hard_bounce(self.conn, customer_id, address, now=now)

    # -- rendering
    def template(self, template_id: int) -> Template | None:
        return template_store.get(self.conn, template_id)  # the preheader in place

    def signing_key(self, domain: str) -> tuple[str, str] | None:
        return domain_store.signing_key(self.conn, domain)


class SqlStore:
    """Transactions on ``engine`` for the worker and the scheduler."""

    def __init__(self, engine: sa.Engine) -> None:
        self.engine = engine

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        with self.engine.begin() as conn:
            yield SqlTransaction(conn)

    def take_send_slot(self, n: int, rate: float) -> float:
        with self.engine.begin() as conn:
            return meta.take_send_slot(conn, n, rate, now=time.time())
