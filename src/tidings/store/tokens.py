"""API tokens: stored as SHA-256 hashes, never in the clear."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa

from tidings.store.tables import api_tokens


def add_token(conn: sa.Connection, *, name: str, role: str, token_hash: str, now: datetime) -> int:
    key = conn.execute(
        api_tokens.insert().values(name=name, role=role, token_hash=token_hash, created_at=now)
    ).inserted_primary_key
    assert key is not None
    return int(key[0])


def token_by_hash(conn: sa.Connection, token_hash: str) -> dict[str, Any] | None:
    """``{"id", "name", "role"}`` of the token with that hash, or None."""
    row = conn.execute(sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role)
                       .where(api_tokens.c.token_hash == token_hash)).first()
    return dict(row._mapping) if row else None


def get_token(conn: sa.Connection, token_id: int) -> dict[str, Any] | None:
    row = conn.execute(sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role)
                       .where(api_tokens.c.id == token_id)).first()
    return dict(row._mapping) if row else None


def list_tokens(conn: sa.Connection) -> list[dict[str, Any]]:
    stmt = sa.select(api_tokens.c.id, api_tokens.c.name, api_tokens.c.role, api_tokens.c.created_at)
    return [dict(r._mapping) for r in conn.execute(stmt.order_by(api_tokens.c.id))]


def delete_token(conn: sa.Connection, token_id: int) -> bool:
    """Delete the token; False when there is none with that id."""
    return conn.execute(api_tokens.delete().where(api_tokens.c.id == token_id)).rowcount > 0


