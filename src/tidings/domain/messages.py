"""One message to one recipient, the packages that carry them, and their statuses.

Message statuses (:class:`MessageStatus`)::

    queued -> sending -> sent | failed
              sending -> queued      the server deferred it (4xx, no connection)
              sending -> unknown     the worker died, or the link broke after the body
    skipped                          never sendable (no address, unsubscribed, suppressed)

``sending`` is written and committed before a message is handed to a transport;
``unknown`` is never sent again. Package statuses (:class:`PackageStatus`)::

    pending -> active (leased by a worker) -> done
               active -> pending (released: the mailing was interrupted)

Pure: standard library only.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    UNKNOWN = "unknown"
    SKIPPED = "skipped"


#: Statuses of messages that belong to a package (all but skipped).
IN_PACKAGES = (MessageStatus.QUEUED, MessageStatus.SENDING, MessageStatus.SENT,
               MessageStatus.FAILED, MessageStatus.UNKNOWN)
#: Statuses that mean the message was, or may have been, handed to a server.
HANDED_OVER = (MessageStatus.SENT, MessageStatus.FAILED, MessageStatus.UNKNOWN,
               MessageStatus.SENDING)


class PackageStatus(enum.StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    DONE = "done"


@dataclass(frozen=True, kw_only=True)
class Package:
    """A run of a mailing's messages (ids ``first_message_id``..``last_message_id``)
    that one worker sends under a lease. ``taken_over``: its lease had run out
    when it was claimed (the worker before died)."""

    id: int
    mailing_id: int
    seq: int
    first_message_id: int
    last_message_id: int
    reserved: int
    taken_over: bool


@dataclass(frozen=True, kw_only=True)
class Recipient:
    """A queued message with what its template may show of the customer."""

    id: int
    customer_id: int | None
    address: str
    external_id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    attributes: Mapping[str, Any] = field(default_factory=dict)

    def customer_context(self) -> dict[str, Any]:
        """What templates see as ``customer``."""
        return {
            "id": self.customer_id,
            "external_id": self.external_id,
            "email": self.email,
            "phone": self.phone,
            "first_name": self.first_name or "",
            "last_name": self.last_name or "",
            "attributes": dict(self.attributes or {}),
        }


@dataclass(frozen=True, kw_only=True)
class Failure:
    """A message of a group that did not end ``sent``: its new status and why."""

    message_id: int
    status: MessageStatus
    error: str | None
    smtp_code: int | None = None


@dataclass(frozen=True, kw_only=True)
class AcceptedPart:
    """A part of an SMS the gateway accepted: its number (1-based) and the id
    the gateway gave it, as the gateway wrote it."""

    message_id: int
    part: int
    remote_id: str


def recipient_of(customer: Mapping[str, Any], *, message_id: int = 0,
                 address: str | None = None) -> Recipient:
    """A customer (a mapping with the customer's fields) as the recipient of a
    preview or test message (``message_id`` 0: no message row has it)."""
    return Recipient(id=message_id, customer_id=customer.get("id"),
                     address=address or customer.get("email") or customer.get("phone") or "",
                     external_id=customer.get("external_id"), email=customer.get("email"),
                     phone=customer.get("phone"), first_name=customer.get("first_name"),
                     last_name=customer.get("last_name"),
                     attributes=customer.get("attributes") or {})


def sample_recipient(address: str = "customer@example.com") -> Recipient:
    """Who a preview or a test message is rendered for when no customer is
    chosen (or the test address is nobody's): Alex Example."""
    return Recipient(id=0, customer_id=None, address=address, email=address,
                     first_name="Alex", last_name="Example")


def quota_message(channel: str, balance: int, need: int) -> str:
    """Why a mailing stopped for want of quota, in the manager's words."""
    if channel == "sms":
        parts = "part" if need == 1 else "parts"
        return (f"The SMS quota is exhausted: {balance} {'part' if balance == 1 else 'parts'} left, "
                f"the next message needs {need} {parts}. Top up the quota, then resume.")
    return (f"The {channel} package is exhausted: {balance} left, the next package needs {need}. "
            "Top up the quota, then resume.")
