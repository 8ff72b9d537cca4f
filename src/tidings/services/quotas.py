"""Quota: the balance per channel, and top-ups (admins)."""

from __future__ import annotations

from typing import Any

from tidings.domain.actors import Actor
from tidings.errors import InvalidInput
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import quotas as store


def get_quota(ctx: Context) -> dict[str, Any]:
    with ctx.read() as conn:
        return {ch: {"balance": store.quota_balance(conn, ch)} for ch in ("email", "sms")}


#: The most one top-up may add, and the most a balance may hold: far within a
#: 64-bit integer (and SQLite's, which would otherwise turn into a float).
MAX_TOPUP = 10**12
MAX_BALANCE = 10**15


def topup(ctx: Context, *, channel: str, amount: Any, actor: Actor) -> dict[str, Any]:
    actor.require_admin()
    if channel not in ("email", "sms"):
        raise InvalidInput("channel must be email or sms.", field="channel")
    if not isinstance(amount, int) or isinstance(amount, bool) or amount <= 0:
        raise InvalidInput("amount must be a positive whole number.", field="amount",
                           manager_message="Give a whole number of messages, 1 or more.")
    if amount > MAX_TOPUP:
        raise InvalidInput(f"amount may be at most {MAX_TOPUP:,} at a time.", field="amount",
                           manager_message=f"Add at most {MAX_TOPUP:,} messages at a time.")
    with ctx.tx() as conn:
        balance = store.quota_balance(conn, channel, for_update=True) or 0
        if balance + amount > MAX_BALANCE:
            raise InvalidInput(f"The {channel} balance may hold at most {MAX_BALANCE:,} messages; "
                               f"it holds {balance:,}.", field="amount",
                               manager_message=f"The balance may hold at most {MAX_BALANCE:,} messages.")
        balance = store.topup(conn, channel, amount)
        audit.record(conn, actor, "quota.topup", f"{channel} quota",
                     {"channel": channel, "amount": amount, "balance": balance}, at=ctx.now())
    return get_quota(ctx)
