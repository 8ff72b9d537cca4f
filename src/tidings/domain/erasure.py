"""Erasing a customer (GDPR art. 17): what goes, what stays, and what is remembered.

Erasure takes away everything that identifies the person and keeps the
mailings' statistics true:

- the customer row goes (name, email, phone, attributes, order totals);
- their messages stay, so each mailing still counts them as sent, opened,
  clicked, bounced, but lose the address and the SMTP error text (which may
  quote the address), and their ``customer_id`` becomes a :func:`pseudonym`:
  a random negative number kept nowhere else, the same on all their messages
  and orders, so "how many distinct customers converted" stays right while
  no one can tell whose they were;
- their orders stay (revenue and conversions) under the same pseudonym;
- the feedback log's text for their messages (bounce reports quote the
  address) is replaced by ``{"erased": true}``;
- plain suppression-list entries for their addresses are removed.

What is remembered: when the customer had objected to mail on a channel
(unsubscribed, complained) or the address bounced (:data:`KEEP_SUPPRESSED`),
that objection must survive the erasure, or the next import from the shop
would mail them again (GDPR art. 21(3): an objection to direct marketing is
honoured for good). The address is then kept only as a keyed hash,
:func:`contact_digest`: HMAC-SHA256 under the installation's secret, which
cannot be reversed by hashing a list of addresses without the secret. A
customer added later with that address or phone gets the remembered status
instead of ``subscribed``; a manager who subscribes them again on purpose
lifts it. A customer who was subscribed everywhere leaves nothing behind.

Pure: standard library only.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

#: Statuses that outlive an erasure (as a hash of the address), by channel.
KEEP_SUPPRESSED = frozenset({"unsubscribed", "bounced", "complained"})
#: The ``skip_reason`` of a message withdrawn before it was sent because its
#: customer was deleted or erased.
WITHDRAWN = {"delete": "deleted", "erase": "erased"}
#: What the feedback log keeps of an erased customer's reports.
ERASED_DETAIL = '{"erased": true}'


def contact_digest(secret: bytes, channel: str, address: str) -> str:
    """The keyed hash that stands for ``address`` (an email, lowercased, or an
    E.164 phone) on ``channel`` (``email`` or ``sms``): 64 hex digits."""
    message = f"{channel}:{address.strip().lower()}".encode()
    return hmac.new(secret, b"tidings/erased\x00" + message, hashlib.sha256).hexdigest()


def pseudonym() -> int:
    """A fresh negative customer id for an erased customer's messages and orders:
    never a real customer's (those are positive), random so that it says nothing."""
    return -(secrets.randbits(62) + 1)


def remembered(statuses: dict[str, str | None]) -> dict[str, str]:
    """Of ``{channel: status}``, the channels whose status outlives erasure."""
    return {channel: status for channel, status in statuses.items()
            if status is not None and status in KEEP_SUPPRESSED}
