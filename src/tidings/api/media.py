"""Images for the email builder.

- ``POST /api/v1/media`` (bearer token, any role): a multipart upload with the
  image in the field ``file`` (``curl -F file=@photo.jpg``); 201 with
  ``{"id", "name", "content_type", "size", "width", "height", "url"}``. PNG,
  JPEG, GIF or WebP, at most 5 MB, judged by the bytes: anything else is a
  422 on ``file``.
- ``GET /api/v1/media``: the uploads, newest first.
- ``GET /media/{id}-{name}`` (:data:`public_router`, no sign-in: mail
  programs fetch it): the image, cacheable for a year (it never changes),
  with its own type, ``nosniff`` and a policy that runs nothing.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.datastructures import UploadFile

from tidings.api.dependencies import Ctx, api_router
from tidings.domain.media import MAX_BYTES
from tidings.errors import InvalidInput, NotFound
from tidings.services import media

router = api_router()
public_router = APIRouter(include_in_schema=False)

IMAGE_HEADERS = {"Cache-Control": "public, max-age=31536000, immutable",
                 "X-Content-Type-Options": "nosniff",
                 "Content-Security-Policy": "default-src 'none'; sandbox",
                 "Cross-Origin-Resource-Policy": "cross-origin"}


async def _file(request: Request) -> tuple[bytes, str | None]:
    """The uploaded image's bytes and file name, from the multipart field ``file``."""
    if not request.headers.get("content-type", "").lower().startswith("multipart/form-data"):
        raise InvalidInput("Send the image as multipart/form-data in the field file "
                           "(curl -F file=@photo.jpg).", field="file")
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > MAX_BYTES + 64 * 1024:
        raise InvalidInput(f"The upload is {int(length) / 1024 / 1024:.1f} MB; images of at most "
                           f"{MAX_BYTES // 1024 // 1024} MB are accepted.", field="file")
    form = await request.form(max_files=1, max_fields=10, max_part_size=MAX_BYTES + 1)
    upload = form.get("file")
    if not isinstance(upload, UploadFile):
        raise InvalidInput("Send the image in the field file.", field="file")
    data = await upload.read(MAX_BYTES + 1)
    await upload.close()
    return data, upload.filename


@router.post("/media", status_code=201, tags=["media"])
async def post_media(ctx: Ctx, request: Request) -> dict[str, Any]:
    data, filename = await _file(request)
    return media.upload(ctx, data, filename=filename)


@router.get("/media", tags=["media"])
def list_media(ctx: Ctx) -> dict[str, Any]:
    return {"media": media.list_media(ctx)}


@public_router.get("/media/{key}", include_in_schema=False)
def public_media(ctx: Ctx, key: str, request: Request) -> Response:
    try:
        found = media.public_file(ctx, key)
    except NotFound:
        return Response("There is no such image.\n", status_code=404, media_type="text/plain",
                        headers={"X-Content-Type-Options": "nosniff"})
    etag = f'"{found.sha256[:32]}"'
    headers = {**IMAGE_HEADERS, "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    return Response(found.data, media_type=found.content_type, headers=headers)
