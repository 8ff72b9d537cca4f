"""What the engine needs from storage, declared on the engine's side.

The engine (worker, scheduler, lifecycle verbs) reads and writes only through
:class:`Store` and the :class:`Transaction` it opens; ``tidings.store.sending``
implements both on SQLAlchemy (SQLite and PostgreSQL), and
``tidings.testing.InMemoryStore`` in memory for fast tests of the engine's
rules. Nothing here is SQL.

Every method of a :class:`Transaction` runs inside that one transaction: what
it writes is committed together when the ``with`` block of
:meth:`Store.transaction` ends, or not at all if it raises.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Protocol

from tidings.domain.mailings import Mailing, Move
from tidings.domain.messages import AcceptedPart, Failure, Package, Recipient
from tidings.domain.reputation import Counts
from tidings.domain.templates import Template


class LeaseLost(Exception):
    """Another worker took the package over; stop touching it."""


class Transaction(Protocol):
    """One unit of work on the store."""

    # -- mailings ------------------------------------------------------------------
    def mailing(self, mailing_id: int, *, lock: bool = False) -> Mailing | None:
        """The mailing; ``lock`` holds its row until the transaction ends, so
        transactions that close packages and move it take their turns."""

    def chain(self, chain_id: int) -> list[Mailing]:
        """Every step of a chain, by step number."""

    def write_move(self, mailing_id: int, move: Move) -> bool:
        """Write ``move`` if the mailing's status is still ``move.source``
        (a compare-and-set; with ``move.reset_guard`` the reputation guard's
        window starts afresh); False when it changed meanwhile."""

    def scheduled_due(self, now: datetime) -> list[int]:
        """Scheduled mailings whose ``send_at`` has come, earliest first."""

    def domain_verified(self, domain: str) -> bool | None:
        """Whether a sending domain is verified; None when it is not set up."""

    # -- the audience ------------------------------------------------------------------
    def freeze_audience(self, mailing: Mailing, *, package_size: int) -> int:
        """One message row per recipient (skipped ones with their reason), cut
        into packages of ``package_size``; returns how many packages."""

    def count_receivable(self, mailing: Mailing) -> int:
        """How many recipients a first step would have if it started now."""

    def left_to_send(self, mailing_id: int) -> bool:
        """Whether any message of the mailing is queued or in flight."""

    def has_active_packages(self, mailing_id: int) -> bool:
        """Whether a worker holds a package of the mailing."""

    def count_unknown(self, mailing_id: int) -> int:
        """How many messages of the mailing have an unknown outcome."""

    def requeue_unknown(self, mailing_id: int) -> int:
        """The mailing's ``unknown`` messages are queued again and their packages
        pending, to be claimed and sent; returns how many."""

    # -- packages --------------------------------------------------------------------
    def claim_package(self, *, owner: str, now: datetime) -> Package | None:
        """Lock the next claimable package: a pending one of a sending mailing
        that is not being canceled, or an active one whose lease ran out, the
        first package of every mailing before the second of any."""

    def abandon_in_flight(self, package: Package) -> int:
        """The in-flight messages of a taken-over package become ``unknown``."""

    def count_queued(self, package: Package) -> int: ...

    def lease_package(self, package: Package, *, owner: str, until: datetime, now: datetime,
                      reserved: int) -> None:
        """Mark the package active under ``owner`` until ``until``, holding
        ``reserved`` of the quota."""

    def renew_lease(self, package_id: int, *, owner: str, until: datetime) -> bool:
        """Extend the lease; False when ``owner`` no longer holds it."""

    def next_group(self, package: Package, limit: int, *, after: int = 0) -> list[Recipient]:
        """The next ``limit`` queued messages of the package with ids above
        ``after``, by id (not held ones)."""

    def mark_in_flight(self, package: Package, first_id: int, last_id: int) -> int:
        """Queued messages with ids in ``[first_id, last_id]`` become ``sending``
        (not held ones)."""

    def mark_ids_in_flight(self, package: Package, ids: Sequence[int]) -> int:
        """Queued messages among ``ids`` become ``sending`` (not held ones); how many."""

    def record_sent(self, package: Package, *, sent: Sequence[int], failures: Sequence[Failure],
                    now: datetime) -> None:
        """The in-flight messages ``sent`` are ``sent``, and ``failures`` are written."""

    def record_results(self, package: Package, *, first_id: int, last_id: int,
                       failures: Sequence[Failure], now: datetime) -> None:
        """Every in-flight message in the range is ``sent`` except ``failures``."""

    def take_reservation(self, package_id: int, amount: int) -> None:
        """``amount`` of the package's quota reservation was used (sent)."""

    def add_reservation(self, package_id: int, amount: int) -> None:
        """The package holds ``amount`` more of the quota (taken from the balance
        by the caller)."""

    def close_package(self, package_id: int, *, done: bool, now: datetime) -> int:
        """Finish (``done``) or release the package; returns the reservation it
        still held, for the caller to give back to the quota."""

    # -- SMS --------------------------------------------------------------------------
    def record_parts(self, parts: Sequence[AcceptedPart], *, now: datetime) -> None:
        """Keep the gateway's id of each accepted part (receipts name them), and
        apply the receipts that came for them before."""

    def release_held(self, package: Package, now: datetime) -> int:
        """Queued messages of the package held until ``now`` or earlier may go."""

    def hold_messages(self, until: Mapping[int, datetime]) -> None:
        """Queued messages (id -> time) are held: not handed out by
        :meth:`next_group` nor marked in flight until :meth:`release_held`."""

    def earliest_hold(self, package: Package) -> datetime | None:
        """When the first held message of the package may go; None: none held."""

    def hold_package(self, package_id: int, until: datetime) -> None:
        """A released (pending) package is not claimed before ``until``."""

    def sms_link(self, mailing_id: int, url: str) -> int:
        """The number of ``url`` among the mailing's short links (made on first use)."""

    # -- the reputation guard's window ---------------------------------------------------
    def add_guard_counts(self, mailing_id: int, *, sent: int, failed: int) -> None: ...

    def guard_counts(self, mailing_id: int) -> Counts: ...

    # -- quota ----------------------------------------------------------------------
    def quota_balance(self, channel: str, *, lock: bool = False) -> int | None:
        """The channel's balance; None when no quota is enforced."""

    def change_quota(self, channel: str, delta: int) -> None:
        """Add ``delta`` to an enforced balance (no-op when not enforced)."""

    # -- customers ------------------------------------------------------------------
    def hard_bounce(self, customer_id: int, address: str, *, now: datetime) -> None:
        """A hard bounce of ``address``: a subscribed customer becomes ``bounced``
        and the address goes on the suppression list."""

    # -- what a renderer needs ------------------------------------------------------------
    def template(self, template_id: int) -> Template | None: ...

    def signing_key(self, domain: str) -> tuple[str, str] | None:
        """``(selector, sealed private key)`` of a verified sending domain, or None."""


class Store(Protocol):
    def transaction(self) -> AbstractContextManager[Transaction]:
        """A transaction: committed when the block ends, rolled back on error."""

    def take_send_slot(self, n: int, rate: float) -> float:
        """Reserve a slot for ``n`` messages at ``rate`` per second for all
        workers together; returns how many seconds to wait before sending."""
