"""Quiet hours: when an SMS may not reach a person, in their own time zone.

A :class:`QuietHours` window (``21:00-09:00`` by default for SMS) is local
wall-clock time: quiet from ``start`` (included) until ``end`` (excluded),
across midnight when ``start`` is after ``end``.

Whose local time (:func:`recipient_zones`): the customer's ``timezone``
attribute when it names an IANA zone; else the zones of the area of their
number; else (fails closed) the shop's zone. A number whose country spans
several zones may only be messaged when the time is allowed in every one of
them (the strictest reading); when those zones share no allowed time at all
(a window as wide as their spread), the shop's zone decides.

:func:`wait_until` answers "may it go now, and if not, when": None, or the
earliest moment when it is allowed in every zone. Daylight saving is
handled by :mod:`zoneinfo` (an end time in a skipped hour is read as the
clock reads it after the jump).

Pure: standard library only.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tidings.errors import InvalidInput

_WINDOW = re.compile(r"\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*")
#: How far ahead an allowed moment common to every zone is looked for.
_HORIZON = timedelta(days=3)


@dataclass(frozen=True, kw_only=True)
class QuietHours:
    """Quiet from ``start`` until ``end``, local time (see the module docstring)."""

    start: time
    end: time

    @classmethod
    def parse(cls, text: str, *, field: str = "quiet_hours") -> QuietHours:
        """``"21:00-09:00"``; InvalidInput naming ``field`` for anything else, or
        for a window that starts when it ends."""
        found = _WINDOW.fullmatch(text or "")
        hours = [int(g) for g in found.groups()] if found else []
        if not found or hours[0] > 23 or hours[2] > 23 or hours[1] > 59 or hours[3] > 59:
            raise InvalidInput(
                f"Quiet hours are two times of day like 21:00-09:00 (from-until), not {text!r}.",
                field=field)
        start, end = time(hours[0], hours[1]), time(hours[2], hours[3])
        if start == end:
            raise InvalidInput("Quiet hours that start when they end would never let a message "
                               "go; give two different times, like 21:00-09:00.", field=field)
        return cls(start=start, end=end)

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def is_quiet(self, local: time) -> bool:
        """Whether the wall-clock time ``local`` is inside the window."""
        local = local.replace(tzinfo=None)
        if self.start < self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    def end_after(self, moment: datetime, zone: tzinfo) -> datetime:
        """The first end of the window after ``moment`` in ``zone`` (aware)."""
        local = moment.astimezone(zone)
        end = datetime.combine(local.date(), self.end, tzinfo=zone)
        if end <= local:
            end = datetime.combine(local.date() + timedelta(days=1), self.end, tzinfo=zone)
        return end


def zone(name: str | None) -> ZoneInfo | None:
    """The IANA zone ``name``, or None when it is not one."""
    if not name or not isinstance(name, str):
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        return None


def check_zone(name: str, *, field: str) -> str:
    """``name`` when it is an IANA time zone, else InvalidInput naming ``field``."""
    if zone(name) is None:
        raise InvalidInput(f"{name!r} is not a time zone: use an IANA name such as Europe/Riga.",
                           field=field)
    return name.strip()


def recipient_zones(*, attributes: Mapping[str, Any] | None, number_zones: Iterable[str],
                    shop_zone: str) -> tuple[ZoneInfo, ...]:
    """The zones whose local time counts for one recipient (module docstring):
    the ``timezone`` attribute, else ``number_zones``, else ``shop_zone``."""
    own = zone((attributes or {}).get("timezone"))
    if own is not None:
        return (own,)
    found = tuple(z for z in (zone(name) for name in number_zones) if z is not None)
    if found:
        return found
    shop = zone(shop_zone)
    assert shop is not None, f"the shop's time zone {shop_zone!r} is not checked"
    return (shop,)


def _common_allowed(now: datetime, window: QuietHours, zones: Sequence[tzinfo]) -> datetime | None:
    """``now``, or the earliest later moment allowed in every zone; None when
    there is none within :data:`_HORIZON`."""
    moment = now
    while moment - now <= _HORIZON:
        quiet = [z for z in zones if window.is_quiet(moment.astimezone(z).time())]
        if not quiet:
            return moment
        moment = max(window.end_after(moment, z) for z in quiet)
    return None


def wait_until(now: datetime, window: QuietHours, zones: Sequence[tzinfo],
               shop_zone: tzinfo) -> datetime | None:
    """None when a message may go at ``now`` (aware) in every zone of ``zones``;
    else the earliest moment it may (module docstring for the shop's zone)."""
    found = _common_allowed(now, window, zones)
    if found is None:
        found = _common_allowed(now, window, (shop_zone,))
    assert found is not None  # one zone always has an allowed time within a day
    return None if found == now else found


def normalize_quiet_hours(value: Any, *, channel: str, default_window: str) -> dict[str, Any] | None:
    """A mailing's ``quiet_hours`` as stored: ``{"enabled": bool, "window":
    "HH:MM-HH:MM"}`` for SMS (missing keys from the default: on, with
    ``default_window``); None for email, which has none. InvalidInput naming
    the field otherwise."""
    if channel != "sms":
        if value not in (None, {}) and not (isinstance(value, dict) and value.get("enabled") is False):
            raise InvalidInput("Quiet hours apply to SMS mailings only.", field="quiet_hours")
        return None
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise InvalidInput('quiet_hours must be an object like {"enabled": true, "window": "21:00-09:00"}.',
                           field="quiet_hours")
    unknown = set(value) - {"enabled", "window"}
    if unknown:
        raise InvalidInput(f"Unknown quiet_hours fields: {', '.join(sorted(unknown))}.", field="quiet_hours")
    enabled = value.get("enabled", True)
    if not isinstance(enabled, bool):
        raise InvalidInput("quiet_hours.enabled must be true or false.", field="quiet_hours.enabled")
    window = QuietHours.parse(str(value.get("window") or default_window), field="quiet_hours.window")
    return {"enabled": enabled, "window": str(window)}
