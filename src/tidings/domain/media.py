"""Images uploaded for the email builder: what a file is, judged by its bytes.

:func:`inspect_image` accepts PNG, JPEG, GIF and WebP only, recognised by
their signature (never by the name or the declared type), reads the width
and height from the file's own header, and refuses with ``InvalidInput``
(``field="file"``): an empty file, one over :data:`MAX_BYTES`, another kind
of file, a header it cannot read, or dimensions of 0 or over
:data:`MAX_SIDE`. :func:`media_name` makes the name used in the public URL:
lower-case letters, digits, ``-``, ``_`` and ``.``, with the extension of
the real type.

Pure: standard library only.
"""

from __future__ import annotations

import re
import struct
import unicodedata
from dataclasses import dataclass

from tidings.errors import InvalidInput

__all__ = ["MAX_BYTES", "MAX_SIDE", "TYPES", "ImageInfo", "inspect_image", "media_name"]

MAX_BYTES = 5 * 1024 * 1024
MAX_SIDE = 10_000
#: Content type -> file extension, for the types accepted.
TYPES = {"image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp"}


@dataclass(frozen=True, kw_only=True)
class ImageInfo:
    content_type: str
    width: int
    height: int


def _png(data: bytes) -> tuple[int, int]:
    if data[12:16] != b"IHDR":
        raise ValueError("no IHDR")
    width, height = struct.unpack(">II", data[16:24])
    return int(width), int(height)


def _gif(data: bytes) -> tuple[int, int]:
    width, height = struct.unpack("<HH", data[6:10])
    return int(width), int(height)


def _jpeg(data: bytes) -> tuple[int, int]:
    at = 2
    while at + 9 < len(data):
        if data[at] != 0xFF:
            raise ValueError("not a marker")
        marker = data[at + 1]
        if marker == 0xFF:  # fill byte
            at += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            at += 2
            continue
        (length,) = struct.unpack(">H", data[at + 2:at + 4])
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
            height, width = struct.unpack(">HH", data[at + 5:at + 9])
            return int(width), int(height)
        at += 2 + length
    raise ValueError("no frame header")


def _webp(data: bytes) -> tuple[int, int]:
    chunk = data[12:16]
    if chunk == b"VP8X":
        width = 1 + int.from_bytes(data[24:27], "little")
        height = 1 + int.from_bytes(data[27:30], "little")
        return width, height
    if chunk == b"VP8L":
        bits = int.from_bytes(data[21:25], "little")
        return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if chunk == b"VP8 ":
        width, height = struct.unpack("<HH", data[26:30])
        return int(width) & 0x3FFF, int(height) & 0x3FFF
    raise ValueError("unknown WebP chunk")


def _kind(data: bytes) -> str | None:
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "image/png"
    if data.startswith(b"\xff\xd8\xff"):
        return "image/jpeg"
    if data[:6] in (b"GIF87a", b"GIF89a"):
        return "image/gif"
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


_READERS = {"image/png": _png, "image/jpeg": _jpeg, "image/gif": _gif, "image/webp": _webp}


def inspect_image(data: bytes) -> ImageInfo:
    """The image's real type and size; raises ``InvalidInput`` as the module says."""
    if not data:
        raise InvalidInput("The file is empty.", field="file")
    if len(data) > MAX_BYTES:
        raise InvalidInput(f"The image is {len(data) / 1024 / 1024:.1f} MB; at most "
                           f"{MAX_BYTES // 1024 // 1024} MB are accepted.", field="file")
    kind = _kind(data)
    if kind is None:
        raise InvalidInput("That is not a PNG, JPEG, GIF or WebP image.", field="file",
                           code="unsupported_media_type")
    try:
        width, height = _READERS[kind](data)
    except (ValueError, struct.error):
        raise InvalidInput(f"The {TYPES[kind].upper()} image could not be read; it may be damaged.",
                           field="file") from None
    if not (0 < width <= MAX_SIDE and 0 < height <= MAX_SIDE):
        raise InvalidInput(f"The image is {width} x {height} pixels; each side must be from 1 to "
                           f"{MAX_SIDE:,}.", field="file")
    return ImageInfo(content_type=kind, width=width, height=height)


def media_name(filename: str | None, content_type: str) -> str:
    """A safe name for the public URL, ending in the real type's extension."""
    stem = (filename or "").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]
    stem = stem.rsplit(".", 1)[0] if "." in stem else stem
    ascii_stem = unicodedata.normalize("NFKD", stem).encode("ascii", "ignore").decode()
    slug = re.sub(r"[^a-z0-9_-]+", "-", ascii_stem.lower()).strip("-_")[:80] or "image"
    return f"{slug}.{TYPES[content_type]}"
