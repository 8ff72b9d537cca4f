"""A stored template, as the engine and the services read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, kw_only=True)
class Template:
    """``subject`` and ``html`` for email (``text`` optional, else derived from
    the HTML), ``text`` for SMS."""

    id: int
    name: str
    channel: str
    subject: str | None = None
    html: str | None = None
    text: str | None = None
