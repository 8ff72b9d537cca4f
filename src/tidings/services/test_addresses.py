"""Who test messages may go to, and how many.

A test send (of a mailing or a template, :mod:`tidings.services.test_sends`)
goes out from the shop's own domain, DKIM-signed: left open, a leaked manager
token would be a spam relay. So, as Mailchimp and Klaviyo do, a test may go
only:

- to the address of a person who signs in to Tidings, or to an address on the
  shop's list of test addresses, which admins keep (People and tokens page,
  ``/api/v1/test-addresses``);
- never to an address on the suppression list or of a customer who is not
  subscribed to email (unsubscribed, bounced, complained);
- at most :data:`PER_HOUR` test messages per actor (person or token) in any
  hour (``429 test_send_limit``);
- each one counted against the email quota when one is enforced (``409
  quota_exhausted`` at 0); a test the server did not take is given back.

Every test message sent is in the audit log, which is also what the hourly
limit counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from email_validator import EmailNotValidError, validate_email

from tidings.domain.actors import Actor
from tidings.domain.throttling import in_words
from tidings.errors import Conflict, InvalidInput, NotFound, RateLimited
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import audit as audit_store
from tidings.store import quotas as quota_store
from tidings.store import test_addresses as store

#: Test messages one actor may send in any hour.
PER_HOUR = 50
#: The audit actions that count as test messages.
TEST_SEND_ACTIONS = ("mailing.test_send", "template.test_send")
_HOUR = timedelta(hours=1)


def _normalized(address: str, *, field: str) -> str:
    try:
        return validate_email(address.strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError as exc:
        raise InvalidInput(f"{field}: {exc}", field=field, manager_message=str(exc)) from None


def list_addresses(ctx: Context) -> list[dict[str, Any]]:
    """The shop's test addresses: ``{"id", "address", "added_by", "created_at"}``, by address."""
    with ctx.read() as conn:
        return [{"id": r["id"], "address": r["address"], "added_by": r["added_by"],
                 "created_at": r["created_at"].isoformat()} for r in store.list_(conn)]


def add_address(ctx: Context, address: Any, *, actor: Actor) -> dict[str, Any]:
    """Allow test messages to ``address``. Admins only. Raises ``InvalidInput``
    (``address``) and ``Conflict(code="test_address_exists")``."""
    actor.require_admin()
    if not isinstance(address, str) or not address.strip():
        raise InvalidInput("Give the address to allow test messages to.", field="address")
    normalized = _normalized(address, field="address")
    with ctx.tx() as conn:
        entry_id = store.add(conn, address=normalized, added_by=actor.name, now=ctx.now())
        if entry_id is None:
            raise Conflict(f"{normalized} is on the list already.", code="test_address_exists")
        audit.record(conn, actor, "test_address.add", normalized, {"id": entry_id}, at=ctx.now())
    return next(a for a in list_addresses(ctx) if a["id"] == entry_id)


def remove_address(ctx: Context, entry_id: int, *, actor: Actor) -> None:
    """Take an address off the list. Admins only; ``NotFound`` when it is not on it."""
    actor.require_admin()
    with ctx.tx() as conn:
        address = store.remove(conn, entry_id)
        if address is None:
            raise NotFound(f"There is no test address {entry_id}.", code="test_address_not_found")
        audit.record(conn, actor, "test_address.remove", address, {"id": entry_id}, at=ctx.now())


def admit(conn: sa.Connection, ctx: Context, address: str, *, actor: Actor, field: str) -> None:
    """Refuse a test message to ``address`` (normalized) from ``actor`` that the rules
    above forbid, and take one message from the email quota; in the caller's
    transaction. Raises ``InvalidInput(code="test_address_not_allowed" or
    "test_address_suppressed", field=field)``, ``RateLimited(code="test_send_limit")``
    and ``Conflict(code="quota_exhausted")``."""
    lower = address.lower()
    if not store.is_allowed(conn, lower):
        raise InvalidInput(
            f"{address} is not a test address: test messages go only to the people who sign in "
            "to Tidings and to the test addresses an admin keeps (GET /api/v1/test-addresses).",
            field=field, code="test_address_not_allowed",
            manager_message=f"{address} is not a test address: test messages go only to the people "
                            "who sign in to Tidings and to the test addresses an admin adds on the "
                            "People and tokens page.")
    why = store.refusal(conn, lower)
    if why is not None:
        raise InvalidInput(f"{address} is {why}: no mail goes to it, test messages included.",
                           field=field, code="test_address_suppressed")
    now = ctx.now()
    recent = audit_store.entries_since(conn, actor=actor.name, actions=TEST_SEND_ACTIONS,
                                       since=now - _HOUR, limit=PER_HOUR)
    if len(recent) >= PER_HOUR:
        # a place frees when the PER_HOUR-th newest leaves the hour
        wait = (recent[PER_HOUR - 1] + _HOUR - now).total_seconds()
        raise RateLimited(f"{PER_HOUR} test messages in an hour is the most one person or token "
                          f"may send: try again in {in_words(wait)}.", retry_after=max(wait, 1),
                          code="test_send_limit")
    balance = quota_store.quota_balance(conn, "email", for_update=True)
    if balance is not None and balance < 1:
        raise Conflict("The email quota is used up, and test messages count against it too: "
                       "ask an admin to top it up.", code="quota_exhausted")
    quota_store.change_balance(conn, "email", -1)


def give_back(ctx: Context) -> None:
    """Return the quota :func:`admit` took, for a test the server did not take."""
    with ctx.tx() as conn:
        quota_store.change_balance(conn, "email", 1)
