"""Media rows: uploaded images, bytes included."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import media

_LISTED = [media.c.id, media.c.name, media.c.content_type, media.c.size, media.c.width,
           media.c.height, media.c.sha256, media.c.created_at]


def insert(conn: sa.Connection, values: Mapping[str, Any], *, now: datetime) -> int:
    media_id: int = conn.execute(
        media.insert().values(**values, created_at=now).returning(media.c.id)).scalar_one()
    return media_id


def find_same(conn: sa.Connection, sha256: str, name: str) -> sa.Row[Any] | None:
    """An upload of the same bytes under the same name (its row without the bytes)."""
    return conn.execute(sa.select(*_LISTED).where(media.c.sha256 == sha256, media.c.name == name)
                        .order_by(media.c.id).limit(1)).first()


def get(conn: sa.Connection, media_id: int, *, with_data: bool = False) -> sa.Row[Any] | None:
    columns = [*_LISTED, media.c.data] if with_data else _LISTED
    return conn.execute(sa.select(*columns).where(media.c.id == media_id)).first()


def list_rows(conn: sa.Connection, *, limit: int) -> list[sa.Row[Any]]:
    """The newest first, without their bytes."""
    return list(conn.execute(sa.select(*_LISTED).order_by(media.c.id.desc()).limit(limit)))
