"""The shop as its customers see it: name, default sender, postal address, logo.

Set once on the Settings page; shown on the pages a customer reaches from a
message (unsubscribe, preferences), and the default sender of new mailings
and test sends (``TIDINGS_DEFAULT_FROM_EMAIL``/``NAME`` stay the defaults
until it is set). :func:`check_settings` validates what an admin typed;
:func:`image_type` tells a logo's format from its first bytes, never from
what the browser claims, and accepts only raster formats that cannot carry
scripts (no SVG).

Pure: the standard library and ``email_validator``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from tidings.errors import InvalidInput

MAX_NAME = 255
MAX_ADDRESS = 1000
#: The largest logo accepted: a logo is shown at most 240 px wide.
MAX_LOGO = 512 * 1024
FIELDS = ("name", "from_email", "from_name", "postal_address")
_IMAGES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"),
           (b"GIF87a", "image/gif"), (b"GIF89a", "image/gif"))


@dataclass(frozen=True, kw_only=True)
class Shop:
    """What is set; ``None`` where nothing is."""

    name: str | None = None
    from_email: str | None = None
    from_name: str | None = None
    postal_address: str | None = None
    logo_type: str | None = None
    logo_version: str = ""


@dataclass(frozen=True, kw_only=True)
class Sender:
    email: str
    name: str | None


def check_settings(data: Mapping[str, Any]) -> dict[str, str | None]:
    """The settings ``data`` gives, cleaned: stripped, empty meaning "not set",
    the sender's address normalised. Raises :class:`InvalidInput` naming the field."""
    unknown = sorted(str(k) for k in data if k not in FIELDS)
    if unknown:
        raise InvalidInput(f"Unknown setting {unknown[0]!r}; the settings are "
                           f"{', '.join(FIELDS)}.", field=unknown[0])
    clean: dict[str, str | None] = {}
    for field in FIELDS:
        if field not in data:
            continue
        value = data[field]
        if value is not None and not isinstance(value, str):
            raise InvalidInput(f'"{field}" must be text.', field=field)
        text = (value or "").strip()
        limit = MAX_ADDRESS if field == "postal_address" else MAX_NAME
        if len(text) > limit:
            raise InvalidInput(f"At most {limit} characters, please.", field=field)
        clean[field] = text or None
    email = clean.get("from_email")
    if email:
        try:
            clean["from_email"] = validate_email(email, check_deliverability=False).normalized
        except EmailNotValidError as exc:
            raise InvalidInput(f"{email!r} is not a valid address: {exc}", field="from_email",
                               manager_message=f"“{email}” is not an email address.") from exc
    return clean


def image_type(data: bytes) -> str | None:
    """``image/png``, ``image/jpeg``, ``image/gif`` or ``image/webp`` by the
    file's first bytes; ``None`` for anything else."""
    for magic, kind in _IMAGES:
        if data.startswith(magic):
            return kind
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def check_logo(data: bytes) -> str:
    """The logo's media type; raises :class:`InvalidInput` (field ``logo``) for a
    file that is empty, too large, or not a PNG, JPEG, GIF or WebP image."""
    if not data:
        raise InvalidInput("Choose an image file for the logo.", field="logo")
    if len(data) > MAX_LOGO:
        raise InvalidInput(f"The logo is larger than {MAX_LOGO // 1024} KB; save it smaller.",
                           field="logo")
    kind = image_type(data)
    if kind is None:
        raise InvalidInput("The logo must be a PNG, JPEG, GIF or WebP image.", field="logo")
    return kind


def sender(shop: Shop, *, default_email: str, default_name: str | None) -> Sender:
    """The default sender of new mailings and test sends: the shop's when set,
    else the configured default (the name follows the address it comes with)."""
    if shop.from_email:
        return Sender(email=shop.from_email, name=shop.from_name or shop.name)
    return Sender(email=default_email, name=shop.from_name or default_name)
