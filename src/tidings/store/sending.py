"""The engine's storage port (:mod:`tidings.engine.ports`) on SQLAlchemy.

:class:`SqlStore` opens transactions on an engine; :class:`SqlTransaction`
answers the port's questions on one connection, through the store modules
that hold the SQL (``mailings``, ``packages``, ``audience``, ``quotas``,
``feedback``, ``meta``). Services that already hold a connection wrap it in
a :class:`SqlTransaction` to call the lifecycle verbs in their own
transaction.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa

from tidings.domain.mailings import Mailing, Move
from tidings.domain.messages import AcceptedPart, Failure, Package, Recipient
from tidings.domain.reputation import Counts
from tidings.domain.templates import Template
from tidings.errors import StoreUnavailable
from tidings.store import audience, feedback, meta, packages, quotas, sms
from tidings.store import domains as domain_store
from tidings.store import mailings as mailing_store
from tidings.store import templates as template_store
from tidings.store.db import unavailable
from tidings.store.tables import domains

log = logging.getLogger("tidings.store")

#: Where the pause between attempts to reach the database starts, and its ceiling.
FIRST_WAIT = 0.25
MAX_WAIT = 2.0


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


def _changes(conn: sa.Connection) -> int | None:
    """Rows changed so far on this SQLite connection (None elsewhere)."""
    changes = getattr(conn.connection.dbapi_connection, "total_changes", None)
    return changes if isinstance(changes, int) else None


class SqlStore:
    """Transactions on ``engine`` for the worker and the scheduler.

    A driver error that says the database cannot serve now (unreachable,
    restarting, locked, disk full) leaves as
    :class:`~tidings.errors.StoreUnavailable`, the port's error; any other
    error leaves as it is. With ``wait_for`` > 0 (the worker's store) a
    transaction that cannot *begin* (nothing of it ran yet, so trying again is
    safe) is tried again with growing pauses for up to that many seconds; an
    outage is logged once when it starts and once when a transaction is
    committed again, however many attempts it took.
    """

    def __init__(self, engine: sa.Engine, *, wait_for: float = 0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.engine = engine
        self.wait_for = wait_for
        self.sleep = sleep
        self._down_since: float | None = None
        self._down_code = ""

    def _went_down(self, error: StoreUnavailable, exc: sa.exc.DBAPIError) -> None:
        if self.wait_for > 0 and self._down_since is None:
            self._down_since, self._down_code = time.monotonic(), error.code
            said = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else ""
            log.warning("the database cannot serve (%s: %s); sending waits for it and carries on "
                        "when it answers", error.code, said)

    def _came_back(self) -> None:
        if self._down_since is not None:
            log.warning("the database answers again after %.1f s; sending carries on",
                        time.monotonic() - self._down_since)
            self._down_since = None

    def _begin(self) -> tuple[sa.Connection, sa.RootTransaction]:
        since: float | None = None
        pause = FIRST_WAIT
        while True:
            conn: sa.Connection | None = None
            try:
                conn = self.engine.connect()
                trans = conn.begin()
            except sa.exc.DBAPIError as exc:
                if conn is not None:
                    conn.close()
                error = unavailable(exc)
                if error is None:
                    raise
                self._went_down(error, exc)
                now = time.monotonic()
                since = since if since is not None else now
                if now - since >= self.wait_for:
                    raise error from exc
                self.sleep(min(pause, self.wait_for - (now - since)))
                pause = min(pause * 2, MAX_WAIT)
                continue
            return conn, trans

    @contextmanager
    def transaction(self) -> Iterator[SqlTransaction]:
        conn, trans = self._begin()
        changes = _changes(conn)
        try:
            with trans:
                yield SqlTransaction(conn)
        except sa.exc.DBAPIError as exc:
            error = unavailable(exc)
            if error is None:
                raise
            self._went_down(error, exc)
            raise error from exc
        else:
            # A whole transaction went through; on a full disk only one that wrote says so.
            if self._down_code != "database_full" or changes is None or _changes(conn) != changes:
                self._came_back()
        finally:
            conn.close()

    def take_send_slot(self, n: int, rate: float) -> float:
        with self.transaction() as tx:
            return meta.take_send_slot(tx.conn, n, rate, now=time.time())
