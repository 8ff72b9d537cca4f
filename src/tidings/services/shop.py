"""The shop's settings (Settings page, admins): name, default sender, postal
address and logo, kept in the database (see :mod:`tidings.domain.shop`)."""

from __future__ import annotations

from typing import Any

from tidings.domain import shop as rules
from tidings.domain.actors import Actor
from tidings.domain.shop import Sender, Shop
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import shop as store


def _shop(row: dict[str, Any] | None) -> Shop:
    if row is None:
        return Shop()
    return Shop(name=row["name"], from_email=row["from_email"], from_name=row["from_name"],
                postal_address=row["postal_address"],
                logo_type=row["logo_type"] if row["has_logo"] else None,
                logo_version=str(int(row["updated_at"].timestamp())))


def get_shop(ctx: Context) -> Shop:
    with ctx.read() as conn:
        return _shop(store.get(conn))


def default_sender(ctx: Context) -> Sender:
    """The sender of new mailings and test sends when none is given: the shop's,
    else ``TIDINGS_DEFAULT_FROM_EMAIL`` / ``TIDINGS_DEFAULT_FROM_NAME``."""
    return rules.sender(get_shop(ctx), default_email=ctx.settings.default_from_email,
                        default_name=ctx.settings.default_from_name)


def update_shop(ctx: Context, data: dict[str, Any], *, actor: Actor) -> Shop:
    """Change the settings ``data`` names (admins only; empty text clears one)."""
    actor.require_admin()
    values = rules.check_settings(data)
    with ctx.tx() as conn:
        store.put(conn, values, now=ctx.now())
        audit.record(conn, actor, "settings.update", "the shop's settings",
                     {"fields": sorted(values)})
        return _shop(store.get(conn))


def set_logo(ctx: Context, data: bytes, *, actor: Actor) -> Shop:
    """Replace the logo (a PNG, JPEG, GIF or WebP image; admins only)."""
    actor.require_admin()
    kind = rules.check_logo(data)
    with ctx.tx() as conn:
        store.put(conn, {"logo": data, "logo_type": kind}, now=ctx.now())
        audit.record(conn, actor, "settings.logo", "the shop's logo", {"bytes": len(data)})
        return _shop(store.get(conn))


def remove_logo(ctx: Context, *, actor: Actor) -> Shop:
    actor.require_admin()
    with ctx.tx() as conn:
        store.put(conn, {"logo": None, "logo_type": None}, now=ctx.now())
        audit.record(conn, actor, "settings.logo", "the shop's logo", {"removed": True})
        return _shop(store.get(conn))


def logo(ctx: Context) -> tuple[bytes, str] | None:
    """The logo's bytes and media type, or ``None``."""
    with ctx.read() as conn:
        return store.logo(conn)
