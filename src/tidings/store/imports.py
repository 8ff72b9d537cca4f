"""Rows of ``customer_imports``: an uploaded file, its column mapping and progress."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import customer_imports

#: Line errors kept per import (their total is counted past it).
MAX_ERRORS = 1000


def insert(conn: sa.Connection, *, data: bytes, filename: str | None, encoding: str,
           delimiter: str, mapping: dict[str, Any], total_lines: int, created_by: str,
           now: datetime) -> int:
    stmt = customer_imports.insert().values(
        data=data, filename=filename, encoding=encoding, delimiter=delimiter, mapping=mapping,
        status="previewed", total_lines=total_lines, errors=[], created_by=created_by,
        created_at=now, updated_at=now)
    return int(conn.execute(stmt.returning(customer_imports.c.id)).scalar_one())


def get(conn: sa.Connection, import_id: int, *, with_data: bool = False) -> dict[str, Any] | None:
    columns = [c for c in customer_imports.c if with_data or c.name != "data"]
    row = conn.execute(sa.select(*columns).where(customer_imports.c.id == import_id)).first()
    return dict(row._mapping) if row else None


def start(conn: sa.Connection, import_id: int, *, mapping: dict[str, Any], now: datetime) -> bool:
    """previewed -> running, with the mapping chosen; False if it was not previewed."""
    return conn.execute(
        customer_imports.update()
        .where(customer_imports.c.id == import_id, customer_imports.c.status == "previewed")
        .values(status="running", mapping=mapping, started_at=now, updated_at=now)
    ).rowcount == 1


def progress(conn: sa.Connection, import_id: int, *, done_lines: int, created: int, updated: int,
             errors: list[dict[str, Any]], now: datetime) -> None:
    """Add one chunk's outcome: counts grow, the first :data:`MAX_ERRORS` errors are kept."""
    kept = conn.execute(sa.select(customer_imports.c.errors)
                        .where(customer_imports.c.id == import_id)).scalar_one()
    room = max(0, MAX_ERRORS - len(kept))
    conn.execute(
        customer_imports.update().where(customer_imports.c.id == import_id).values(
            done_lines=done_lines, created=customer_imports.c.created + created,
            updated=customer_imports.c.updated + updated,
            error_count=customer_imports.c.error_count + len(errors),
            errors=[*kept, *errors[:room]] if errors and room else kept, updated_at=now))


def finish(conn: sa.Connection, import_id: int, *, status: str, now: datetime,
           failure: str | None = None) -> None:
    """running -> done or failed; the file is dropped."""
    conn.execute(customer_imports.update().where(customer_imports.c.id == import_id).values(
        status=status, failure=failure, data=None, finished_at=now, updated_at=now))


def forget_unstarted(conn: sa.Connection, *, before: datetime) -> int:
    """Delete the previews made before ``before`` that were never started (their files)."""
    return conn.execute(customer_imports.delete().where(
        customer_imports.c.status == "previewed", customer_imports.c.created_at < before)).rowcount
