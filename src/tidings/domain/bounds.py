"""What a stored value may be: ids, names, numbers and moments that every
database Tidings runs on holds, checked where a value comes in.

A value beyond these is refused with :class:`~tidings.errors.InvalidInput`
naming the field (a 422), never passed on for the database to fail on:

- an id is a whole number from 1 to :data:`MAX_ID` (a signed 64-bit integer);
- a name is text of at most :data:`MAX_NAME` characters, without NUL
  characters or lone surrogates (:func:`check_text`);
- a moment has a time zone and lies within :data:`EARLIEST` and
  :data:`LATEST` (:func:`bounded_moment`);
- a number compared in a rule is finite and within :data:`MAX_NUMBER`.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from tidings.errors import InvalidInput

MAX_ID = 2**63 - 1
MAX_NAME = 255
#: Numbers in segment rules: exact in a double, as both databases compare them.
MAX_NUMBER = 10**15
EARLIEST = datetime(1900, 1, 1, tzinfo=UTC)
LATEST = datetime(2999, 12, 31, 23, 59, 59, tzinfo=UTC)


def check_id(value: Any, field: str, *, what: str) -> int:
    """``value`` as an id, or ``InvalidInput`` naming ``field``; ``what`` names
    the object in the message ("segment")."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{field} must be the id of a {what} (a whole number).", field=field)
    if not 1 <= value <= MAX_ID:
        raise InvalidInput(f"There is no {what} {value}.", field=field)
    return value


def text_problem(text: str) -> str | None:
    """Why ``text`` cannot be stored (a NUL character, a lone surrogate), or None."""
    if "\x00" in text:
        return "contains a NUL character"
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return "contains a lone surrogate, which is not text"
    return None


def check_text(value: str, field: str, *, limit: int = MAX_NAME, label: str | None = None) -> str:
    """``value`` if it can be stored in a column of ``limit`` characters, else
    ``InvalidInput`` naming ``field`` (``label`` is how a person calls it)."""
    name = label or field
    problem = text_problem(value)
    if problem:
        raise InvalidInput(f"{field} {problem}.", field=field, manager_message=f"The {name} {problem}.")
    if len(value) > limit:
        raise InvalidInput(f"{field} has {len(value):,} characters; at most {limit:,} are allowed.",
                           field=field,
                           manager_message=f"The {name} is too long: at most {limit:,} characters.")
    return value


def bounded_moment(moment: datetime, field: str) -> datetime:
    """``moment`` in UTC, or ``InvalidInput`` naming ``field`` when it lies
    outside :data:`EARLIEST`..:data:`LATEST` (or cannot even be put in UTC)."""
    try:
        utc = moment.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    if utc is None or not EARLIEST <= utc <= LATEST:
        raise InvalidInput(f"{field} must lie between the years {EARLIEST.year} and {LATEST.year}.",
                           field=field)
    return utc
