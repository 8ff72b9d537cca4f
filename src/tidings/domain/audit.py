"""What the audit log records, in words: each action's code and how a page says it.

An entry is ``(at, actor, action, subject, detail)``: ``actor`` names who
(:class:`~tidings.domain.actors.Actor.name`), ``subject`` what, in a few words
(``mailing 12 “Spring sale”``), ``detail`` a small JSON object. Actions are
``noun.verb`` codes; any such code may be recorded, and those below have their
own words (others are shown as their code).
"""

from __future__ import annotations

import re

#: action code -> what the actor did, as a page says it before the subject.
ACTIONS: dict[str, str] = {
    "mailing.send": "sent",
    "mailing.schedule": "scheduled",
    "mailing.cancel": "canceled",
    "mailing.resume": "resumed",
    "mailing.send_unknown": "sent again to those with an unknown outcome",
    "mailing.delete": "deleted",
    "mailing.test_send": "sent a test of",
    "template.test_send": "sent a test of",
    "customer.create": "added",
    "customer.update": "changed",
    "customer.import": "imported",
    "customer.delete": "deleted",
    "customer.erase": "erased",
    "segment.delete": "deleted",
    "settings.update": "changed the shop's settings:",
    "settings.logo": "changed the shop's logo:",
    "quota.topup": "topped up",
    "domain.delete": "deleted the sending domain",
    "user.create": "added",
    "user.role": "changed the role of",
    "user.remove": "removed",
    "user.password_reset": "reset the password of",
    "user.password_set": "chose a new password:",
    "token.create": "created",
    "token.revoke": "revoked",
    "test_address.add": "allowed test sends to",
    "test_address.remove": "no longer allows test sends to",
}

_CODE = re.compile(r"[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*")


def check_action(action: str) -> str:
    """``action`` if it is a ``noun.verb`` code; raises ``ValueError`` otherwise."""
    if not _CODE.fullmatch(action) or len(action) > 48:
        raise ValueError(f"an audit action is a noun.verb code, got {action!r}")
    return action


def describe(action: str) -> str:
    """The words for ``action`` (its code when it has none)."""
    return ACTIONS.get(action, action)
