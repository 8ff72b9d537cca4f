"""The addresses test sends may go to besides those of the people who sign in."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customers, suppressions, test_addresses, users


def list_(conn: sa.Connection) -> list[dict[str, Any]]:
    stmt = sa.select(test_addresses).order_by(test_addresses.c.address)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def add(conn: sa.Connection, *, address: str, added_by: str, now: datetime) -> int | None:
    """The new entry's id, or None when the address is on the list already."""
    if conn.execute(sa.select(test_addresses.c.id).where(test_addresses.c.address == address)).first():
        return None
    key = conn.execute(test_addresses.insert().values(address=address, added_by=added_by,
                                                      created_at=now)).inserted_primary_key
    assert key is not None
    return int(key[0])


def remove(conn: sa.Connection, entry_id: int) -> str | None:
    """Delete the entry; its address, or None when there was none with that id."""
    address = conn.execute(sa.select(test_addresses.c.address)
                           .where(test_addresses.c.id == entry_id)).scalar_one_or_none()
    if address is not None:
        conn.execute(test_addresses.delete().where(test_addresses.c.id == entry_id))
    return address


def is_allowed(conn: sa.Connection, address: str) -> bool:
    """Whether ``address`` (lower case) is on the list or is a person's sign-in address."""
    listed = sa.select(test_addresses.c.id).where(sa.func.lower(test_addresses.c.address) == address)
    person = sa.select(users.c.id).where(users.c.email == address)
    return bool(conn.execute(sa.select(sa.exists(listed) | sa.exists(person))).scalar_one())


def refusal(conn: sa.Connection, address: str) -> str | None:
    """Why no mail may go to ``address`` (lower case): the suppression list's reason
    (``bounced``, ``complained``, ...) or a customer's email status that is not
    ``subscribed``; ``None`` when nothing stands against it."""
    suppressed = conn.execute(sa.select(suppressions.c.reason)
                              .where(suppressions.c.address == address)).scalar_one_or_none()
    if suppressed is not None:
        return str(suppressed)
    status = conn.execute(sa.select(customers.c.email_status)
                          .where(customers.c.email == address)).scalar_one_or_none()
    return None if status in (None, "subscribed") else str(status)
