"""Mailings, their frozen audience (message rows) and packages.

Message statuses: ``queued`` -> ``sending`` (in flight, marked before SMTP) ->
``sent`` | ``failed``; ``sending`` -> ``unknown`` when the worker holding it
died; ``skipped`` for recipients that cannot be sent to. Package statuses:
``pending`` -> ``active`` (leased) -> ``done``; ``active`` -> ``pending`` when
released after an interruption.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.domain.mailings import Progress
from tidings.store.tables import customers, mailings, messages, packages, suppressions

m, msg, pkg, cust = mailings, messages, packages, customers


# -- mailings ---------------------------------------------------------------


def insert(conn: sa.Connection, values: dict[str, Any]) -> int:
    return conn.execute(m.insert().values(**values).returning(m.c.id)).scalar_one()


def get(conn: sa.Connection, mailing_id: int, *, for_update: bool = False) -> dict[str, Any] | None:
    stmt = sa.select(m).where(m.c.id == mailing_id)
    if for_update and conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def list_(conn: sa.Connection, *, limit: int, offset: int, status: str | None = None) -> list[dict[str, Any]]:
    stmt = sa.select(m).order_by(m.c.id.desc()).limit(limit).offset(offset)
    if status:
        stmt = stmt.where(m.c.status == status)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def update(conn: sa.Connection, mailing_id: int, values: dict[str, Any]) -> None:
    conn.execute(m.update().where(m.c.id == mailing_id).values(**values))


def move(conn: sa.Connection, mailing_id: int, *, from_: Iterable[str], values: dict[str, Any]) -> bool:
    """Change the mailing only if its status is still one of ``from_`` (a compare-and-set)."""
    result = conn.execute(
        m.update().where(m.c.id == mailing_id, m.c.status.in_(list(from_))).values(**values)
    )
    return result.rowcount == 1


def chain(conn: sa.Connection, chain_id: int) -> list[dict[str, Any]]:
    stmt = sa.select(m).where(m.c.chain_id == chain_id).order_by(m.c.step)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def delete(conn: sa.Connection, ids: Sequence[int]) -> None:
    conn.execute(pkg.delete().where(pkg.c.mailing_id.in_(list(ids))))
    conn.execute(msg.delete().where(msg.c.mailing_id.in_(list(ids))))
    conn.execute(m.delete().where(m.c.id.in_(list(ids))))


def has_messages(conn: sa.Connection, mailing_id: int) -> bool:
    first = sa.select(msg.c.id).where(msg.c.mailing_id == mailing_id).limit(1)
    return conn.execute(first).first() is not None


def due_scheduled(conn: sa.Connection, now: datetime) -> list[int]:
    stmt = sa.select(m.c.id).where(m.c.status == "scheduled", m.c.send_at <= now).order_by(m.c.send_at)
    return list(conn.execute(stmt).scalars())


# -- audience ---------------------------------------------------------------


def freeze_audience(
    conn: sa.Connection, *, mailing_id: int, channel: str, where: sa.ColumnElement[bool]
) -> None:
    """Create one message row per matching customer in one ``INSERT ... SELECT``.

    Customers without an address for the channel, not subscribed on it, or on the
    suppression list are recorded as ``skipped`` with the reason.
    """
    address = cust.c.email if channel == "email" else cust.c.phone
    status = cust.c.email_status if channel == "email" else cust.c.sms_status
    source: sa.FromClause = cust
    suppressed: sa.ColumnElement[Any] = sa.null()
    if channel == "email":
        source = cust.outerjoin(suppressions, suppressions.c.address == cust.c.email)
        suppressed = suppressions.c.reason
    reason = sa.case(
        (address.is_(None), "no_address"),
        (status != "subscribed", status),
        (suppressed.is_not(None), suppressed),
        else_=sa.null(),
    )
    state = sa.case((reason.is_(None), "queued"), else_="skipped")
    select = (
        sa.select(sa.literal(mailing_id, sa.BigInteger), cust.c.id, address, state, reason)
        .select_from(source)
        .where(where)
        .order_by(cust.c.id)
    )
    conn.execute(
        msg.insert().from_select(
            ["mailing_id", "customer_id", "address", "status", "skip_reason"], select
        )
    )


def count_receivable(conn: sa.Connection, *, channel: str, where: sa.ColumnElement[bool]) -> int:
    """How many customers matching ``where`` :func:`freeze_audience` would queue
    (not skip) on ``channel`` now."""
    address = cust.c.email if channel == "email" else cust.c.phone
    status = cust.c.email_status if channel == "email" else cust.c.sms_status
    stmt = sa.select(sa.func.count()).select_from(cust).where(
        where, address.is_not(None), status == "subscribed")
    if channel == "email":
        stmt = stmt.where(~sa.exists().where(suppressions.c.address == cust.c.email))
    return int(conn.execute(stmt).scalar_one())


def make_packages(conn: sa.Connection, *, mailing_id: int, size: int, first_seq: int = 1) -> int:
    """Cut the queued messages of a mailing into packages of ``size``, by id."""
    rn = sa.func.row_number().over(order_by=msg.c.id).label("rn")
    queued = (
        sa.select(msg.c.id, rn)
        .where(msg.c.mailing_id == mailing_id, msg.c.status == "queued")
        .subquery()
    )
    firsts = list(
        conn.execute(
            sa.select(queued.c.id, queued.c.rn).where((queued.c.rn - 1) % size == 0).order_by(queued.c.id)
        )
    )
    if not firsts:
        return 0
    stats = conn.execute(
        sa.select(sa.func.max(msg.c.id), sa.func.count()).where(
            msg.c.mailing_id == mailing_id, msg.c.status == "queued"
        )
    ).one()
    last_id, total = stats
    rows = []
    for i, (first_id, row_number) in enumerate(firsts):
        end = firsts[i + 1][0] - 1 if i + 1 < len(firsts) else last_id
        count = min(size, total - (row_number - 1))
        rows.append(
            {"mailing_id": mailing_id, "seq": first_seq + i, "first_message_id": first_id,
             "last_message_id": end, "size": count, "status": "pending", "reserved": 0}
        )
    conn.execute(pkg.insert(), rows)
    return len(rows)


_COUNTED = ("sent", "failed", "unknown", "queued")
# Listed, not "!= skipped": the index on (mailing_id, status, id) then serves
# the id range of a package instead of every message of the mailing.
_IN_PACKAGES = ("queued", "sending", "sent", "failed", "unknown")


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
        if p.status == "active":
            live.append(msg.c.id.between(p.first_message_id, p.last_message_id))
        elif p.sent_count is None:
            counts["queued"] += p.size
        else:
            for status in _COUNTED:
                counts[status] += getattr(p, f"{status}_count")
    counts.update(_count_by_status(conn, sa.and_(msg.c.mailing_id == mailing_id, msg.c.status == "skipped")))
    for in_range in live:
        counts.update(_count_by_status(conn, sa.and_(msg.c.mailing_id == mailing_id, in_range,
                                                     msg.c.status.in_(_IN_PACKAGES))))
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


def lock(conn: sa.Connection, mailing_id: int) -> None:
    """Lock the mailing's row until the transaction ends (PostgreSQL; SQLite's
    writers are serialised already): transactions that close packages and move
    the mailing take their turns, each seeing what the one before committed."""
    if conn.dialect.name == "postgresql":
        conn.execute(sa.select(m.c.id).where(m.c.id == mailing_id).with_for_update())


def has_active_packages(conn: sa.Connection, mailing_id: int) -> bool:
    """Whether a worker holds a package of the mailing (one is being sent)."""
    first = sa.select(pkg.c.id).where(pkg.c.mailing_id == mailing_id, pkg.c.status == "active").limit(1)
    return conn.execute(first).first() is not None


def finish_if_done(conn: sa.Connection, mailing_id: int, *, now: datetime) -> bool:
    """``sending`` -> ``sent`` when no message is left queued or in flight."""
    left = sa.exists().where(msg.c.mailing_id == mailing_id, msg.c.status.in_(("queued", "sending")))
    result = conn.execute(
        m.update()
        .where(m.c.id == mailing_id, m.c.status == "sending", ~left)
        .values(status="sent", finished_at=now, updated_at=now, cancel_requested_at=None)
    )
    return result.rowcount == 1


# -- packages ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class Package:
    id: int
    mailing_id: int
    seq: int
    first_message_id: int
    last_message_id: int
    reserved: int
    taken_over: bool


def claim_package(conn: sa.Connection, *, owner: str, now: datetime) -> Package | None:
    """Lock the next package of a sending mailing: pending ones, or active ones
    whose lease ran out. Ordering by ``seq`` first shares workers fairly: the
    first package of every mailing goes before the second of any.
    """
    # A canceling mailing starts no new package, but one already started (whose
    # worker died) is finished all the same.
    claimable = sa.and_(
        m.c.status == "sending",
        sa.or_(sa.and_(pkg.c.status == "pending", m.c.cancel_requested_at.is_(None)),
               sa.and_(pkg.c.status == "active", pkg.c.lease_until < now)),
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
        recheck = sa.select(m.c.id).where(m.c.id == p["mailing_id"], m.c.status == "sending")
        if p["status"] == "pending":
            recheck = recheck.where(m.c.cancel_requested_at.is_(None))
        still = conn.execute(recheck.with_for_update(read=True)).first()
        if still is None:
            return None
    return Package(
        id=p["id"], mailing_id=p["mailing_id"], seq=p["seq"],
        first_message_id=p["first_message_id"], last_message_id=p["last_message_id"],
        reserved=p["reserved"], taken_over=p["status"] == "active",
    )


def lease(conn: sa.Connection, package: Package, *, owner: str, until: datetime, now: datetime,
          reserved: int) -> None:
    conn.execute(
        pkg.update()
        .where(pkg.c.id == package.id)
        .values(status="active", lease_owner=owner, lease_until=until, reserved=reserved,
                started_at=sa.func.coalesce(pkg.c.started_at, now))
    )


def renew(conn: sa.Connection, package_id: int, *, owner: str, until: datetime) -> bool:
    result = conn.execute(
        pkg.update()
        .where(pkg.c.id == package_id, pkg.c.lease_owner == owner, pkg.c.status == "active")
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
        msg.update().where(_in_package(package), msg.c.status == "sending").values(status="unknown")
    ).rowcount


def count_queued(conn: sa.Connection, package: Package) -> int:
    return conn.execute(
        sa.select(sa.func.count()).where(_in_package(package), msg.c.status == "queued")
    ).scalar_one()


def next_group(conn: sa.Connection, package: Package, limit: int) -> list[sa.Row[Any]]:
    """The next ``limit`` queued messages of the package, with their customers."""
    stmt = (
        sa.select(
            msg.c.id, msg.c.address, msg.c.customer_id,
            cust.c.external_id, cust.c.email, cust.c.phone, cust.c.first_name,
            cust.c.last_name, cust.c.attributes,
        )
        .join(cust, cust.c.id == msg.c.customer_id)
        .where(_in_package(package), msg.c.status == "queued")
        .order_by(msg.c.id)
        .limit(limit)
    )
    return list(conn.execute(stmt))


def mark_in_flight(conn: sa.Connection, package: Package, first_id: int, last_id: int) -> int:
    """Queued messages with ids in ``[first_id, last_id]`` become ``sending``."""
    return conn.execute(
        msg.update()
        .where(_in_package(package), msg.c.id.between(first_id, last_id), msg.c.status == "queued")
        .values(status="sending")
    ).rowcount


def record_results(
    conn: sa.Connection,
    package: Package,
    *,
    first_id: int,
    last_id: int,
    others: Sequence[dict[str, Any]],
    now: datetime,
) -> None:
    """Every in-flight message in the range is ``sent`` except those in ``others``
    (each ``{"id", "status", "error", "smtp_code"}``), which are updated one by one
    in a single executemany."""
    # The package row first: a late writer (its lease was taken over) and the
    # worker closing the package then take their turns, and the counts stay true.
    current = sa.select(pkg.c.status).where(pkg.c.id == package.id)
    if conn.dialect.name == "postgresql":
        current = current.with_for_update()
    closed = conn.execute(current).scalar_one() != "active"
    other_ids = [o["id"] for o in others]
    in_range = sa.and_(_in_package(package), msg.c.id.between(first_id, last_id),
                       msg.c.status.in_(("sending", "unknown")))
    stmt = msg.update().where(in_range).values(status="sent", sent_at=now)
    if other_ids:
        stmt = stmt.where(msg.c.id.not_in(other_ids))
    conn.execute(stmt)
    if others:
        conn.execute(
            msg.update()
            .where(msg.c.id == sa.bindparam("mid"),
                   sa.or_(msg.c.status == "sending", msg.c.status == "unknown"))
            .values(status=sa.bindparam("new_status"), error=sa.bindparam("err"),
                    smtp_code=sa.bindparam("code")),
            [{"mid": o["id"], "new_status": o["status"], "err": o["error"], "code": o["smtp_code"]}
             for o in others],
        )
    if closed:
        store_counts(conn, package.id)


def add_counts(conn: sa.Connection, mailing_id: int, *, sent: int, failed: int) -> None:
    if sent or failed:
        conn.execute(
            m.update()
            .where(m.c.id == mailing_id)
            .values(guard_sent=m.c.guard_sent + sent, guard_failed=m.c.guard_failed + failed)
        )


def guard_counts(conn: sa.Connection, mailing_id: int) -> dict[str, int]:
    """The reputation guard's window: ``sent``, ``failed``, ``bounced``, ``complained``."""
    row = conn.execute(
        sa.select(m.c.guard_sent.label("sent"), m.c.guard_failed.label("failed"),
                  m.c.guard_bounced.label("bounced"), m.c.guard_complained.label("complained"))
        .where(m.c.id == mailing_id)
    ).one()
    return dict(row._mapping)


GUARD_RESET = {"guard_sent": 0, "guard_failed": 0, "guard_bounced": 0, "guard_complained": 0}


def take_reservation(conn: sa.Connection, package_id: int, amount: int) -> None:
    conn.execute(pkg.update().where(pkg.c.id == package_id).values(reserved=pkg.c.reserved - amount))


def close_package(conn: sa.Connection, package_id: int, *, done: bool, now: datetime) -> int:
    """Finish (``done``) or release (back to ``pending``) a package; returns the
    reservation it still held, for the caller to give back to the quota."""
    reserved = conn.execute(sa.select(pkg.c.reserved).where(pkg.c.id == package_id)).scalar_one()
    values: dict[str, Any] = {"reserved": 0, "lease_owner": None, "lease_until": None}
    values.update({"status": "done", "finished_at": now} if done else {"status": "pending"})
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
