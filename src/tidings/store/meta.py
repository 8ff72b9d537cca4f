"""Settings kept in the database: the generated secret key, the send clock."""

from __future__ import annotations

import sqlalchemy as sa

from tidings.store.tables import meta


def get_meta(conn: sa.Connection, key: str) -> str | None:
    return conn.execute(sa.select(meta.c.value).where(meta.c.key == key)).scalar_one_or_none()


def put_meta_once(conn: sa.Connection, key: str, value: str) -> str:
    """Store ``value`` unless the key exists; return what is stored."""
    current = get_meta(conn, key)
    if current is not None:
        return current
    conn.execute(meta.insert().values(key=key, value=value))
    return value


SEND_CLOCK = "send_clock"


def take_send_slot(conn: sa.Connection, n: int, rate: float, *, now: float) -> float:
    """``TIDINGS_SEND_RATE`` across all workers: a token bucket in one row.

    Moves the shared send clock forward by ``n / rate`` seconds from
    ``max(now, clock)`` (``now`` in Unix seconds) and returns how long the
    caller waits before its slot begins, so the rate holds for all workers
    together whatever their number."""
    stmt = sa.select(meta.c.value).where(meta.c.key == SEND_CLOCK)
    if conn.dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    current = conn.execute(stmt).scalar_one_or_none()
    start = max(now, float(current)) if current is not None else now
    end = str(start + n / rate)
    if current is None:
        conn.execute(meta.insert().values(key=SEND_CLOCK, value=end))
    else:
        conn.execute(meta.update().where(meta.c.key == SEND_CLOCK).values(value=end))
    return max(0.0, start - now)
