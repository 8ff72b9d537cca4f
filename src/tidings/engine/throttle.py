"""``TIDINGS_SEND_RATE`` across all workers: a token bucket kept in one database row.

Each worker, before a group of ``n`` messages, moves the shared clock forward by
``n / rate`` seconds and sleeps until its slot begins, so the rate holds for all
workers together whatever their number.
"""

from __future__ import annotations

import time

import sqlalchemy as sa

from tidings.store.tables import meta

KEY = "send_clock"


def reserve(engine: sa.Engine, n: int, rate: float) -> float:
    """Take a slot for ``n`` messages; returns seconds to wait before sending."""
    now = time.time()
    with engine.begin() as conn:
        stmt = sa.select(meta.c.value).where(meta.c.key == KEY)
        if conn.dialect.name == "postgresql":
            stmt = stmt.with_for_update()
        current = conn.execute(stmt).scalar_one_or_none()
        start = max(now, float(current)) if current is not None else now
        end = str(start + n / rate)
        if current is None:
            conn.execute(meta.insert().values(key=KEY, value=end))
        else:
            conn.execute(meta.update().where(meta.c.key == KEY).values(value=end))
    return max(0.0, start - now)


def wait(engine: sa.Engine, n: int, rate: float) -> None:
    if rate > 0 and n > 0:
        delay = reserve(engine, n, rate)
        if delay:
            time.sleep(delay)
