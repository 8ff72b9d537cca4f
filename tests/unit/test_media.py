"""Uploaded images are judged by their bytes: type, dimensions, size."""

from __future__ import annotations

import struct
import zlib

import pytest

from tidings.domain.media import MAX_BYTES, inspect_image, media_name
from tidings.errors import InvalidInput


def png(width: int, height: int) -> bytes:
    raw = b"".join(b"\x00" + b"\x20\x50\xa6" * width for _ in range(height))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(raw))
            + chunk(b"IEND", b""))


def jpeg(width: int, height: int) -> bytes:
    app0 = b"\xff\xe0" + struct.pack(">H", 16) + b"JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    sof = b"\xff\xc0" + struct.pack(">HBHHB", 11, 8, height, width, 1) + b"\x01\x11\x00"
    return b"\xff\xd8" + app0 + sof + b"\xff\xd9"


GIF = b"GIF89a" + struct.pack("<HH", 7, 5) + b"\x00\x00\x00;"
WEBP_LOSSLESS = (b"RIFF\x00\x00\x00\x00WEBPVP8L" + b"\x00" * 4 + b"\x2f"
                 + ((63) | (31 << 14)).to_bytes(4, "little"))


@pytest.mark.parametrize(("data", "kind", "size"), [
    (png(30, 20), "image/png", (30, 20)),
    (jpeg(640, 480), "image/jpeg", (640, 480)),
    (GIF, "image/gif", (7, 5)),
    (WEBP_LOSSLESS, "image/webp", (64, 32)),
])
def test_each_accepted_type_is_recognised_with_its_dimensions(data: bytes, kind: str, size: tuple) -> None:
    info = inspect_image(data)
    assert (info.content_type, (info.width, info.height)) == (kind, size)


@pytest.mark.parametrize(("data", "words"), [
    (b"", "empty"),
    (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "not a PNG"),
    (b"<html><script>alert(1)</script>", "not a PNG"),
    (b"\x89PNG\r\n\x1a\n" + b"\x00" * 8, "could not be read"),
    (png(1, 1) + b"\x00" * MAX_BYTES, "at most 5 MB"),
])
def test_anything_else_is_refused_on_the_file_field(data: bytes, words: str) -> None:
    with pytest.raises(InvalidInput, match=words) as caught:
        inspect_image(data)
    assert caught.value.field == "file"


def test_the_public_name_is_safe_and_has_the_real_extension() -> None:
    assert media_name("../../Été Sale!!.PNG", "image/png") == "ete-sale.png"
    assert media_name("photo.png", "image/jpeg") == "photo.jpg"
    assert media_name(None, "image/gif") == "image.gif"
