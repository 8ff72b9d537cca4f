"""Message rows and the packages that carry them: leases, in-flight marks,
results, and the progress counts read from them.

The statuses are those of :mod:`tidings.domain.messages`. A package's counts
are stored when it is closed, so progress counts only the messages of active
packages (through the (mailing, status, id) index), never every message.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from tidings.domain.mailings import MailingStatus, Progress
from tidings.domain.messages import IN_PACKAGES, Failure, MessageStatus, Package, PackageStatus, Recipient
from tidings.store.tables import customers, mailings, messages, packages

m, msg, pkg, cust = mailings, messages, packages, customers
Q, SENDING = MessageStatus.QUEUED.value, MessageStatus.SENDING.value
PENDING, ACTIVE, DONE = PackageStatus.PENDING.value, PackageStatus.ACTIVE.value, PackageStatus.DONE.value
MAILING_SENDING = MailingStatus.SENDING.value

#: The message statuses a closed package stores counts of.
_COUNTED = ("sent", "failed", "unknown", "queued")
# Listed, not "!= skipped": the index on (mailing_id, status, id) then serves
# the id range of a package instead of every message of the mailing.
_IN_PACKAGES = tuple(status.value for status in IN_PACKAGES)


def _count_by_status(conn: sa.Connection, where: sa.ColumnElement[bool]) -> dict[str, int]:
    rows = conn.execute(sa.select(msg.c.status, sa.func.count()).where(where).group_by(msg.c.status))
    return {status: count for status, count in rows}


def progress(conn: sa.Connection, mailing_id: int) -> Progress:
    """Messages by status, without counting them all: a closed package's counts
    were stored when it was closed, a package never claimed is all queued, and
    only the messages of active packages (and the skipped ones) are counted."""
    counts: collections.Counter[str] = collections.Counter()
    live: list[sa.ColumnElement[bool]] = []
    for p in conn.execute(
        sa.select(pkg.c.status, pkg.c.size, pkg.c.first_message_id, pkg.c.last_message_id,
                  *(pkg.c[f"{status}_count"] for status in _COUNTED))
        .where(pkg.c.mailing_id == mailing_id)
    ):
        if p.status == ACTIVE:
            live.append(msg.c.id.between(p.first_message_id, p.last_message_id))
        elif p.sent_count is None:
            counts["queued"] += p.size
        else:
            for status in _COUNTED:
                counts[status] += getattr(p, f"{status}_count")
    # The skipped messages and those of each active package, in one statement (one
    # round trip): a part per index range, added up here.
    parts = [sa.and_(msg.c.mailing_id == mailing_id, msg.c.status == MessageStatus.SKIPPED.value)]
    parts += [sa.and_(msg.c.mailing_id == mailing_id, in_range, msg.c.status.in_(_IN_PACKAGES))
              for in_range in live]
    selects = [sa.select(msg.c.status, sa.func.count()).where(where).group_by(msg.c.status)
               for where in parts]
    for status, count in conn.execute(sa.union_all(*selects) if len(selects) > 1 else selects[0]):
        counts[status] += count
    return Progress(
        total=sum(counts.values()),
        queued=counts["queued"],
        sending=counts["sending"],
        sent=counts["sent"],
        failed=counts["failed"],
        skipped=counts["skipped"],
        unknown=counts["unknown"],
    )


def store_counts(conn: sa.Connection, package_id: int) -> None:
    """Count the messages of a package into its row (when it is closed)."""
    p = conn.execute(sa.select(pkg).where(pkg.c.id == package_id)).one()
    found = _count_by_status(conn, sa.and_(
        msg.c.mailing_id == p.mailing_id,
        msg.c.id.between(p.first_message_id, p.last_message_id),
        msg.c.status.in_(_IN_PACKAGES),
    ))
    # nothing is in flight in a closed package; were it so, it would count as unknown
    found["unknown"] = found.get("unknown", 0) + found.pop("sending", 0)
    conn.execute(pkg.update().where(pkg.c.id == package_id)
                 .values(**{f"{status}_count": found.get(status, 0) for status in _COUNTED}))


def has_active_packages(conn: sa.Connection, mailing_id: int) -> bool:
    """Whether a worker holds a package of the mailing (one is being sent)."""
    first = sa.select(pkg.c.id).where(pkg.c.mailing_id == mailing_id, pkg.c.status == ACTIVE).limit(1)
    return conn.execute(first).first() is not None


def count_unknown(conn: sa.Connection, mailing_id: int) -> int:
    """Messages of the mailing whose outcome is unknown (a worker died with them
    in flight, or the link broke after the body went out)."""
    return conn.execute(sa.select(sa.func.count()).where(
        msg.c.mailing_id == mailing_id, msg.c.status == MessageStatus.UNKNOWN.value)).scalar_one()


def requeue_unknown(conn: sa.Connection, mailing_id: int) -> int:
    """The mailing's unknown messages are queued again, and each package holding
    some goes back to pending (its stored counts with them) to be claimed."""
    requeued = 0
    for p in conn.execute(sa.select(pkg.c.id, pkg.c.first_message_id, pkg.c.last_message_id)
                          .where(pkg.c.mailing_id == mailing_id, pkg.c.status != ACTIVE)
                          .order_by(pkg.c.seq)).all():
        n = conn.execute(
            msg.update().where(msg.c.mailing_id == mailing_id,
                               msg.c.id.between(p.first_message_id, p.last_message_id),
                               msg.c.status == MessageStatus.UNKNOWN.value)
            .values(status=Q, error=None, smtp_code=None)
        ).rowcount
        if n:
            requeued += n
            conn.execute(pkg.update().where(pkg.c.id == p.id)
                         .values(status=PENDING, lease_owner=None, lease_until=None, not_before=None,
                                 finished_at=None))
            store_counts(conn, p.id)
    return requeued


def left_to_send(conn: sa.Connection, mailing_id: int) -> bool:
    """Whether any message of the mailing is queued or in flight."""
    first = sa.select(msg.c.id).where(msg.c.mailing_id == mailing_id,
                                      msg.c.status.in_((Q, SENDING))).limit(1)
    return conn.execute(first).first() is not None


def claim_package(conn: sa.Connection, *, owner: str, now: datetime) -> Package | None:
    """Lock the next package of a sending mailing: pending ones, or active ones
    whose lease ran out. Ordering by ``seq`` first shares workers fairly: the
    first package of every mailing goes before the second of any.
    """
    # A canceling mailing starts no new package, but one already started (whose
    # worker died) is finished all the same.
    # A package released for quiet hours waits for its time (pkg.not_before).
    claimable = sa.and_(
        m.c.status == MAILING_SENDING,
        sa.or_(sa.and_(pkg.c.status == PENDING, m.c.cancel_requested_at.is_(None),
                       sa.or_(pkg.c.not_before.is_(None), pkg.c.not_before <= now)),
               sa.and_(pkg.c.status == ACTIVE, pkg.c.lease_until < now)),
    )
    stmt = (
        sa.select(pkg)
        .join(m, m.c.id == pkg.c.mailing_id)
        .where(claimable)
        .order_by(pkg.c.seq, pkg.c.mailing_id)
        .limit(1)
    )
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update(of=pkg, skip_locked=True)
    row = conn.execute(stmt).first()
    if row is None:
        return None
    p = row._mapping
    if conn.dialect.name == "postgresql":
        # Share-lock the mailing and look again: a cancel that locked it first is
        # seen here (and the claim given up), and one that comes after waits for
        # this lease to commit, so it knows a package is in flight.
        recheck = sa.select(m.c.id).where(m.c.id == p["mailing_id"], m.c.status == MAILING_SENDING)
        if p["status"] == PENDING:
            recheck = recheck.where(m.c.cancel_requested_at.is_(None))
        still = conn.execute(recheck.with_for_update(read=True)).first()
        if still is None:
            return None
    return Package(
        id=p["id"], mailing_id=p["mailing_id"], seq=p["seq"],
        first_message_id=p["first_message_id"], last_message_id=p["last_message_id"],
        reserved=p["reserved"], taken_over=p["status"] == ACTIVE,
    )


def lease(conn: sa.Connection, package: Package, *, owner: str, until: datetime, now: datetime,
          reserved: int) -> None:
    conn.execute(
        pkg.update()
        .where(pkg.c.id == package.id)
        .values(status=ACTIVE, lease_owner=owner, lease_until=until, reserved=reserved,
                started_at=sa.func.coalesce(pkg.c.started_at, now))
    )


def renew(conn: sa.Connection, package_id: int, *, owner: str, until: datetime) -> bool:
    result = conn.execute(
        pkg.update()
        .where(pkg.c.id == package_id, pkg.c.lease_owner == owner, pkg.c.status == ACTIVE)
        .values(lease_until=until)
    )
    return result.rowcount == 1


def _in_package(package: Package) -> sa.ColumnElement[bool]:
    return sa.and_(
        msg.c.mailing_id == package.mailing_id,
        msg.c.id.between(package.first_message_id, package.last_message_id),
    )


def abandon_in_flight(conn: sa.Connection, package: Package) -> int:
    """A dead worker's in-flight messages become ``unknown``: never resent."""
    return conn.execute(
        msg.update().where(_in_package(package), msg.c.status == SENDING)
        .values(status=MessageStatus.UNKNOWN.value)
    ).rowcount


def count_queued(conn: sa.Connection, package: Package) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(_in_package(package), msg.c.status == Q)
    ).scalar_one()


def next_group(conn: sa.Connection, package: Package, limit: int, *, after: int = 0) -> list[Recipient]:
    """The next ``limit`` queued messages of the package with ids above ``after``,
    with their customers; messages held for quiet hours (``not_before`` set)
    are not among them."""
    stmt = (
        sa.select(
            msg.c.id, msg.c.address, msg.c.customer_id,
            cust.c.external_id, cust.c.email, cust.c.phone, cust.c.first_name,
            cust.c.last_name, cust.c.attributes,
        )
        .join(cust, cust.c.id == msg.c.customer_id)
        .where(_in_package(package), msg.c.status == Q, msg.c.not_before.is_(None), msg.c.id > after)
        .order_by(msg.c.id)
        .limit(limit)
    )
    return [Recipient(id=r.id, customer_id=r.customer_id, address=r.address, external_id=r.external_id,
                      email=r.email, phone=r.phone, first_name=r.first_name, last_name=r.last_name,
                      attributes=r.attributes or {})
            for r in conn.execute(stmt)]


def mark_in_flight(conn: sa.Connection, package: Package, first_id: int, last_id: int) -> int:
    """Queued messages with ids in ``[first_id, last_id]`` become ``sending``
    (not those held for quiet hours)."""
    return conn.execute(
        msg.update()
        .where(_in_package(package), msg.c.id.between(first_id, last_id), msg.c.status == Q,
               msg.c.not_before.is_(None))
        .values(status=SENDING)
    ).rowcount


def _id_among(conn: sa.Connection, ids: Sequence[int]) -> tuple[sa.ColumnElement[bool], dict[str, Any]]:
    """``messages.id`` among ``ids``, and its parameters: on PostgreSQL one array
    (``= ANY``: one statement whatever the count, compiled and prepared once), on
    SQLite an ``IN`` list."""
    if conn.dialect.name == "postgresql":
        among = msg.c.id == sa.any_(sa.bindparam("ids", type_=postgresql.ARRAY(sa.BigInteger)))
    else:
        among = msg.c.id.in_(sa.bindparam("ids", expanding=True))
    return among, {"ids": list(ids)}


def mark_ids_in_flight(conn: sa.Connection, package: Package, ids: Sequence[int]) -> int:
    """Queued messages among ``ids`` (all of ``package``) become ``sending``
    (not those held); how many.

    By id alone, as :func:`record_sent`: with the package's bounds in the
    condition, PostgreSQL (whose statistics lag behind a freshly frozen
    audience) walked the package's whole range in ``ix_messages_mailing_status``
    for a handful of ids, 4-19 ms a statement instead of well under one."""
    among, params = _id_among(conn, ids)
    return conn.execute(
        msg.update().where(among, msg.c.status == Q, msg.c.not_before.is_(None)).values(status=SENDING),
        params,
    ).rowcount


def record_sent(conn: sa.Connection, package: Package, *, sent: Sequence[int],
                failures: Sequence[Failure], now: datetime) -> None:
    """The in-flight (or unknown, after a takeover) messages ``sent`` (all of
    ``package``) become ``sent``, and ``failures`` are written; a closed package
    is recounted."""
    closed = _lock_package(conn, package)
    if sent:
        among, params = _id_among(conn, sent)
        conn.execute(
            msg.update()
            .where(among, msg.c.status.in_((SENDING, MessageStatus.UNKNOWN.value)))
            .values(status=MessageStatus.SENT.value, sent_at=now), params
        )
    _write_failures(conn, failures)
    if closed:
        store_counts(conn, package.id)


def _lock_package(conn: sa.Connection, package: Package) -> bool:
    """Lock the package row (a late writer and the worker closing it take their
    turns, and the counts stay true); True when it is closed."""
    current = sa.select(pkg.c.status).where(pkg.c.id == package.id)
    if conn.dialect.name == "postgresql":
        current = current.with_for_update()
    return conn.execute(current).scalar_one() != PackageStatus.ACTIVE.value


def _write_failures(conn: sa.Connection, failures: Sequence[Failure]) -> None:
    if failures:
        conn.execute(
            msg.update()
            .where(msg.c.id == sa.bindparam("mid"),
                   sa.or_(msg.c.status == SENDING, msg.c.status == MessageStatus.UNKNOWN.value))
            .values(status=sa.bindparam("new_status"), error=sa.bindparam("err"),
                    smtp_code=sa.bindparam("code")),
            [{"mid": f.message_id, "new_status": f.status.value, "err": f.error, "code": f.smtp_code}
             for f in failures],
        )


def record_results(conn: sa.Connection, package: Package, *, first_id: int, last_id: int,
                   failures: Sequence[Failure], now: datetime) -> None:
    """Every in-flight message in the range is ``sent`` except ``failures``,
    which are updated one by one in a single executemany."""
    closed = _lock_package(conn, package)
    in_flight = (SENDING, MessageStatus.UNKNOWN.value)
    in_range = sa.and_(_in_package(package), msg.c.id.between(first_id, last_id),
                       msg.c.status.in_(in_flight))
    stmt = msg.update().where(in_range).values(status=MessageStatus.SENT.value, sent_at=now)
    if failures:
        stmt = stmt.where(msg.c.id.not_in([f.message_id for f in failures]))
    conn.execute(stmt)
    _write_failures(conn, failures)
    if closed:
        store_counts(conn, package.id)


def add_reservation(conn: sa.Connection, package_id: int, amount: int) -> None:
    conn.execute(pkg.update().where(pkg.c.id == package_id).values(reserved=pkg.c.reserved + amount))


# -- quiet hours: held messages, and packages that wait for their time ---------------------


def release_held(conn: sa.Connection, package: Package, now: datetime) -> int:
    """Queued messages held until ``now`` or earlier may go again."""
    return conn.execute(
        msg.update().where(_in_package(package), msg.c.status == Q, msg.c.not_before <= now)
        .values(not_before=None)
    ).rowcount


def hold_messages(conn: sa.Connection, until: dict[int, datetime]) -> None:
    """Queued messages are not sent before their time (message id -> time)."""
    if until:
        conn.execute(
            msg.update().where(msg.c.id == sa.bindparam("mid"), msg.c.status == Q)
            .values(not_before=sa.bindparam("until")),
            [{"mid": mid, "until": at} for mid, at in until.items()],
        )


def earliest_hold(conn: sa.Connection, package: Package) -> datetime | None:
    """When the first message held in the package may go; None when none is held."""
    found: datetime | None = conn.execute(
        sa.select(sa.func.min(msg.c.not_before)).where(_in_package(package), msg.c.status == Q)
    ).scalar_one()
    return found


def hold_package(conn: sa.Connection, package_id: int, until: datetime) -> None:
    """A released package is not claimed again before ``until``."""
    conn.execute(pkg.update().where(pkg.c.id == package_id).values(not_before=until))


def paused_until(conn: sa.Connection, mailing_id: int, now: datetime) -> datetime | None:
    """When a sending mailing whose every unfinished package waits for quiet hours
    goes on; None when one is being sent or could be claimed now."""
    rows = conn.execute(sa.select(pkg.c.status, pkg.c.not_before)
                        .where(pkg.c.mailing_id == mailing_id, pkg.c.status != DONE)).all()
    if not rows or any(r.status == ACTIVE or r.not_before is None or r.not_before <= now for r in rows):
        return None
    return min(r.not_before for r in rows)


def take_reservation(conn: sa.Connection, package_id: int, amount: int) -> None:
    conn.execute(pkg.update().where(pkg.c.id == package_id).values(reserved=pkg.c.reserved - amount))


def close_package(conn: sa.Connection, package_id: int, *, done: bool, now: datetime) -> int:
    """Finish (``done``) or release (back to ``pending``) a package; returns the
    reservation it still held, for the caller to give back to the quota."""
    reserved = conn.execute(sa.select(pkg.c.reserved).where(pkg.c.id == package_id)).scalar_one()
    values: dict[str, Any] = {"reserved": 0, "lease_owner": None, "lease_until": None}
    values.update({"status": DONE, "finished_at": now} if done else {"status": PENDING})
    conn.execute(pkg.update().where(pkg.c.id == package_id).values(**values))
    store_counts(conn, package_id)
    return reserved


def messages_for_customer(conn: sa.Connection, customer_id: int, *, limit: int) -> list[dict[str, Any]]:
    stmt = (
        sa.select(msg, m.c.name.label("mailing_name"))
        .join(m, m.c.id == msg.c.mailing_id)
        .where(msg.c.customer_id == customer_id)
        .order_by(msg.c.id.desc())
        .limit(limit)
    )
    return [dict(r._mapping) for r in conn.execute(stmt)]
