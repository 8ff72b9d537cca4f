"""The conversion block of a mailing: attribution window, basis and UTM tags.

:func:`normalize_conversion` fills in the defaults and refuses bad values with
:class:`~tidings.errors.InvalidInput` naming the field. Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from tidings.errors import InvalidInput

#: What counts as having been reached by a mailing, for attribution.
BASES = ("received", "opened", "clicked")

UTM_KEYS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
_UTM_VALUE = re.compile(r"^[A-Za-z0-9_.\-]+$")


def slug(text: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9_.\-]+", "-", text.strip()).strip("-").lower()
    return cleaned[:60] or "mailing"


def normalize_conversion(
    value: dict[str, Any] | None, *, name: str, channel: str
) -> dict[str, Any]:
    """The conversion block with defaults filled in, or :class:`InvalidInput`.

    ``window_days`` 1..365 (default 7); ``basis`` received|opened|clicked
    (default received); ``utm`` is on by default with ``utm_source=tidings``,
    ``utm_medium=<channel>``, ``utm_campaign=<slug of the name>``; ``{"utm":
    {"enabled": false}}`` turns it off. UTM values: Latin letters, digits, ``_-.``.
    """
    value = dict(value or {})
    unknown = set(value) - {"window_days", "basis", "utm"}
    if unknown:
        raise InvalidInput(
            f"Unknown conversion fields: {', '.join(sorted(unknown))}.", field="conversion"
        )
    window = value.get("window_days", 7)
    if not isinstance(window, int) or isinstance(window, bool) or not 1 <= window <= 365:
        raise InvalidInput(
            "conversion.window_days must be a whole number of days from 1 to 365.",
            field="conversion.window_days",
            manager_message="Count orders placed within 1 to 365 days of the message.",
        )
    basis = value.get("basis", "received")
    if basis not in BASES:
        raise InvalidInput(
            f"conversion.basis must be one of {', '.join(BASES)}.", field="conversion.basis"
        )
    utm_in = value.get("utm") or {}
    if not isinstance(utm_in, dict):
        raise InvalidInput("conversion.utm must be an object.", field="conversion.utm")
    enabled = utm_in.get("enabled", True)
    utm: dict[str, Any] = {"enabled": bool(enabled)}
    if enabled:
        defaults = {"utm_source": "tidings", "utm_medium": channel, "utm_campaign": slug(name)}
        for key in UTM_KEYS:
            raw = utm_in.get(key, defaults.get(key))
            if raw in (None, ""):
                if key in defaults:
                    raise InvalidInput(
                        f"conversion.utm.{key} is required when UTM tags are on.",
                        field=f"conversion.utm.{key}",
                    )
                continue
            if not isinstance(raw, str) or not _UTM_VALUE.match(raw):
                raise InvalidInput(
                    f"conversion.utm.{key} may hold only Latin letters, digits and _ - . (got {raw!r}).",
                    field=f"conversion.utm.{key}",
                )
            utm[key] = raw
        extra = set(utm_in) - set(UTM_KEYS) - {"enabled"}
        if extra:
            raise InvalidInput(
                f"Unknown UTM fields: {', '.join(sorted(extra))}.", field="conversion.utm"
            )
    return {"window_days": window, "basis": basis, "utm": utm}


def utm_tags(conversion: Mapping[str, Any] | None) -> dict[str, str]:
    """The UTM tags to merge into a mailing's links; empty when UTM is off."""
    utm = (conversion or {}).get("utm") or {}
    if not utm.get("enabled"):
        return {}
    return {key: utm[key] for key in UTM_KEYS if utm.get(key)}
