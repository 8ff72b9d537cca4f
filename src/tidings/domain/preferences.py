"""A customer's own choices, on the pages a message links to: what they are
shown and what they may change.

- An address is shown masked (:func:`mask`): enough for the person to know it
  is theirs, not enough for whoever holds a forwarded message to read it.
- A channel is offered when the customer has an address for it. They may
  switch it on and off themselves (:func:`may_choose`), also after a spam
  complaint (their own choice now overrides it); a bounced address is not
  theirs to switch back on: the messages did not arrive.
- Unsubscribed by mistake: "Subscribe again" on the confirmation undoes an
  unsubscribe (and the mailing's count of it) when the status is still
  ``unsubscribed`` (:func:`may_undo`).

Pure: standard library only.
"""

from __future__ import annotations

from collections.abc import Mapping

CHANNELS = ("email", "sms")
#: How the pages name each channel.
WORDS = {"email": "emails", "sms": "text messages"}


def mask_email(address: str) -> str:
    """``a***@example.org``: the first character of the local part, the domain."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def mask_phone(phone: str) -> str:
    """``+44 ••• •• 58``-like: the first three and last two characters."""
    if len(phone) <= 5:
        return "•" * len(phone)
    return phone[:3] + "•" * (len(phone) - 5) + phone[-2:]


def mask(channel: str, address: str) -> str:
    return mask_email(address) if channel == "email" else mask_phone(address)


def may_choose(status: str | None) -> bool:
    """Whether the customer may switch a channel in this status on or off."""
    return status in ("subscribed", "unsubscribed", "complained")


def may_undo(status: str | None) -> bool:
    """Whether "Subscribe again" applies (the unsubscribe stands, nothing else happened)."""
    return status == "unsubscribed"


def changes(current: Mapping[str, str | None], wanted: Mapping[str, bool]) -> dict[str, str]:
    """``{channel: new status}`` for the channels whose wanted state differs from
    ``current`` (``{channel: status}``, ``None`` without an address) and that the
    customer may switch."""
    found: dict[str, str] = {}
    for channel, status in current.items():
        if channel not in wanted or not may_choose(status):
            continue
        subscribed = status == "subscribed"
        if wanted[channel] != subscribed:
            found[channel] = "subscribed" if wanted[channel] else "unsubscribed"
    return found
