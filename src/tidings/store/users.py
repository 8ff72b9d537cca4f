"""People who sign in to the web UI (argon2 password hashes), their failed
sign-ins, and their one-time password reset links."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from tidings.store.tables import password_resets, sign_in_failures, users

_PUBLIC = (users.c.id, users.c.email, users.c.role, users.c.created_at)


def list_users(conn: sa.Connection) -> list[dict[str, Any]]:
    return [dict(r._mapping) for r in conn.execute(sa.select(*_PUBLIC).order_by(users.c.id))]


def add_user(conn: sa.Connection, *, email: str, password_hash: str, role: str, now: datetime) -> int:
    key = conn.execute(
        users.insert().values(email=email, password_hash=password_hash, role=role, created_at=now)
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def find_user(conn: sa.Connection, email: str) -> dict[str, Any] | None:
    row = conn.execute(sa.select(users).where(users.c.email == email.lower())).first()
    return dict(row._mapping) if row else None


def get_user(conn: sa.Connection, user_id: int, *, lock: bool = False) -> dict[str, Any] | None:
    stmt = sa.select(users).where(users.c.id == user_id)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    return dict(row._mapping) if row else None


def admin_ids(conn: sa.Connection, *, lock: bool = False) -> list[int]:
    """The ids of the admins; with ``lock``, their rows stay locked (PostgreSQL) until
    the transaction ends, so two admins cannot demote each other at once."""
    stmt = sa.select(users.c.id).where(users.c.role == "admin").order_by(users.c.id)
    return list(conn.execute(stmt.with_for_update() if lock else stmt).scalars())


def set_role(conn: sa.Connection, user_id: int, role: str) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(role=role))


def set_password_hash(conn: sa.Connection, user_id: int, password_hash: str) -> None:
    conn.execute(users.update().where(users.c.id == user_id).values(password_hash=password_hash))


def delete_user(conn: sa.Connection, user_id: int) -> bool:
    return conn.execute(users.delete().where(users.c.id == user_id)).rowcount > 0


# -- failed sign-ins ------------------------------------------------------------------


def failures(conn: sa.Connection, email: str, *, lock: bool = False) -> dict[str, Any] | None:
    """``{"failures", "last_failed_at", "locked_until"}`` for the address typed, or None."""
    stmt = sa.select(sign_in_failures.c.failures, sign_in_failures.c.last_failed_at,
                     sign_in_failures.c.locked_until).where(sign_in_failures.c.email == email)
    row = conn.execute(stmt.with_for_update() if lock else stmt).first()
    return dict(row._mapping) if row else None


def count_failure(conn: sa.Connection, email: str, *, now: datetime, forget_before: datetime) -> int:
    """Count one more failed sign-in for ``email`` (starting again from 1 when the
    last one was before ``forget_before``); the failures in a row now. One
    statement, so that concurrent failures are all counted."""
    insert: Any = (postgresql.insert if conn.dialect.name == "postgresql" else sqlite.insert)(
        sign_in_failures)
    table = sign_in_failures
    conn.execute(insert.values(email=email, failures=1, last_failed_at=now).on_conflict_do_update(
        index_elements=[table.c.email],
        set_={"failures": sa.case((table.c.last_failed_at < forget_before, 1),
                                  else_=table.c.failures + 1),
              "last_failed_at": now}))
    return int(conn.execute(sa.select(table.c.failures).where(table.c.email == email)).scalar_one())


def lock_until(conn: sa.Connection, email: str, until: datetime) -> None:
    conn.execute(sign_in_failures.update().where(sign_in_failures.c.email == email)
                 .values(locked_until=until))


def clear_failures(conn: sa.Connection, email: str) -> None:
    conn.execute(sign_in_failures.delete().where(sign_in_failures.c.email == email))


def forget_failures_before(conn: sa.Connection, when: datetime, *, now: datetime) -> None:
    conn.execute(sign_in_failures.delete().where(
        sign_in_failures.c.last_failed_at < when,
        sa.or_(sign_in_failures.c.locked_until.is_(None), sign_in_failures.c.locked_until < now)))


# -- password reset links ---------------------------------------------------------------


def add_reset(conn: sa.Connection, *, user_id: int, token_hash: str, now: datetime,
              expires_at: datetime) -> None:
    """A new link; the person's earlier unused links stop working."""
    conn.execute(password_resets.delete().where(password_resets.c.user_id == user_id))
    conn.execute(password_resets.insert().values(user_id=user_id, token_hash=token_hash,
                                                 created_at=now, expires_at=expires_at))


def find_reset(conn: sa.Connection, token_hash: str, *, lock: bool = False) -> dict[str, Any] | None:
    """The link with its person's email: ``{"id", "user_id", "email", "expires_at", "used_at"}``."""
    stmt = (sa.select(password_resets.c.id, password_resets.c.user_id, password_resets.c.expires_at,
                      password_resets.c.used_at, users.c.email)
            .join(users, users.c.id == password_resets.c.user_id)
            .where(password_resets.c.token_hash == token_hash))
    row = conn.execute(stmt.with_for_update(of=password_resets) if lock else stmt).first()
    return dict(row._mapping) if row else None


def use_reset(conn: sa.Connection, reset_id: int, now: datetime) -> bool:
    """Mark the link used; False if it was used already (by a concurrent request)."""
    return conn.execute(password_resets.update()
                        .where(password_resets.c.id == reset_id, password_resets.c.used_at.is_(None))
                        .values(used_at=now)).rowcount > 0
