"""The one row of ``shop_settings``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import shop_settings

ROW = 1


def get(conn: sa.Connection) -> dict[str, Any] | None:
    """The settings without the logo's bytes (``has_logo`` says whether there is one)."""
    columns = [c for c in shop_settings.c if c.name != "logo"]
    row = conn.execute(sa.select(*columns, shop_settings.c.logo.is_not(None).label("has_logo"))
                       .where(shop_settings.c.id == ROW)).first()
    return dict(row._mapping) if row else None


def put(conn: sa.Connection, values: dict[str, Any], *, now: datetime) -> None:
    """Write ``values`` (columns), creating the row the first time."""
    changed = conn.execute(shop_settings.update().where(shop_settings.c.id == ROW)
                           .values(**values, updated_at=now)).rowcount
    if not changed:
        conn.execute(shop_settings.insert().values(id=ROW, **values, updated_at=now))


def logo(conn: sa.Connection) -> tuple[bytes, str] | None:
    row = conn.execute(sa.select(shop_settings.c.logo, shop_settings.c.logo_type)
                       .where(shop_settings.c.id == ROW)).first()
    return (row.logo, row.logo_type) if row and row.logo else None
