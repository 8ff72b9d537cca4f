"""Media: images uploaded for the email builder, and how they are served.

An upload is checked by its bytes (:func:`tidings.domain.media.inspect_image`:
PNG, JPEG, GIF or WebP, at most 5 MB) and stored in the database. Its public
address is ``TIDINGS_PUBLIC_URL/media/<id>-<name>``: anyone may fetch it
(recipients' mail programs do), it never changes, and the same bytes uploaded
again under the same name give back the first upload.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from tidings.domain.media import inspect_image, media_name
from tidings.errors import NotFound
from tidings.services.context import Context
from tidings.store import media as store


@dataclass(frozen=True, kw_only=True)
class MediaFile:
    """An image to serve: its bytes and what to say about them."""

    content_type: str
    data: bytes
    sha256: str
    name: str


def path_of(media_id: int, name: str) -> str:
    return f"/media/{media_id}-{name}"


def media_json(ctx: Context, row: Any) -> dict[str, Any]:
    return {"id": row.id, "name": row.name, "content_type": row.content_type, "size": row.size,
            "width": row.width, "height": row.height,
            "url": ctx.settings.public_url.rstrip("/") + path_of(row.id, row.name),
            "created_at": row.created_at.isoformat()}


def upload(ctx: Context, data: bytes, *, filename: str | None) -> dict[str, Any]:
    """Store an image; returns it with its public ``url``. Raises
    ``InvalidInput(field="file")`` for what is not an accepted image."""
    info = inspect_image(data)
    name = media_name(filename, info.content_type)
    digest = hashlib.sha256(data).hexdigest()
    with ctx.tx() as conn:
        same = store.find_same(conn, digest, name)
        if same is not None:
            return media_json(ctx, same)
        media_id = store.insert(conn, {"name": name, "content_type": info.content_type,
                                       "size": len(data), "width": info.width,
                                       "height": info.height, "sha256": digest, "data": data},
                                now=ctx.now())
        row = store.get(conn, media_id)
        return media_json(ctx, row)


def list_media(ctx: Context, *, limit: int = 100) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [media_json(ctx, row) for row in store.list_rows(conn, limit=limit)]


def public_file(ctx: Context, key: str) -> MediaFile:
    """The image at ``/media/<key>``, ``key`` being ``<id>-<name>`` exactly as
    uploaded; raises ``NotFound`` for anything else."""
    head, _, name = key.partition("-")
    missing = NotFound("There is no such image.", code="media_not_found")
    if not head.isdigit() or not name or len(head) > 18:
        raise missing
    with ctx.read() as conn:
        row = store.get(conn, int(head), with_data=True)
    if row is None or row.name != name:
        raise missing
    return MediaFile(content_type=row.content_type, data=bytes(row.data), sha256=row.sha256,
                     name=row.name)
