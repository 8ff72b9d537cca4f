"""Segments: saved rule trees over customers; create, rename, edit, copy,
delete, count; and what the rule builder offers (the attributes customers
have, with their kind; the mailings a rule may name).

Counts are taken at the context's clock (``ctx.now()``), which relative
dates (``{"days_ago": N}``, ``within_days``) count from.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa

from tidings.domain.actors import Actor
from tidings.domain.attributes import kind_of
from tidings.domain.bounds import check_text
from tidings.domain.segments import ATTRIBUTE_KEY, has_relative_dates, parse_rules
from tidings.errors import Conflict, InvalidInput, NotFound
from tidings.services import audit
from tidings.services.context import Context
from tidings.store import customers as customer_store
from tidings.store import segments as store
from tidings.store.segments import count_reachable

#: A mailing in these statuses still reads its segment: the segment cannot go.
IN_USE = ("scheduled", "sending")
#: How many of the newest customers the builder reads attribute kinds from.
ATTRIBUTE_SAMPLE = 2000
MAX_NAME = 255


def segment_json(row: Any) -> dict[str, Any]:
    """The segment as the API shows it; ``relative`` says whether its rules hold
    relative dates, so that who is in it changes as time passes."""
    return {"id": row.id, "name": row.name, "rules": row.rules,
            "relative": has_relative_dates(parse_rules(row.rules)),
            "created_at": row.created_at.isoformat(), "updated_at": row.updated_at.isoformat()}


def _name(value: object) -> str:
    name = value.strip() if isinstance(value, str) else ""
    if not name:
        raise InvalidInput("A segment needs a name.", field="name",
                           manager_message="Give the segment a name.")
    if len(name) > MAX_NAME:
        raise InvalidInput(f"A segment's name has at most {MAX_NAME} characters.", field="name")
    return check_text(name, "name", label="name")


def _segment(conn: sa.Connection, segment_id: int) -> Any:
    row = store.get(conn, segment_id)
    if row is None:
        raise NotFound(f"There is no segment {segment_id}.", code="segment_not_found",
                       manager_message="This segment does not exist (any more).")
    return row


def create_segment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    name = _name(data.get("name"))
    rules = data.get("rules", {})
    parse_rules(rules)
    with ctx.tx() as conn:
        segment_id = store.insert(conn, name=name, rules=rules, now=ctx.now())
        return segment_json(_segment(conn, segment_id))


def update_segment(ctx: Context, segment_id: int, data: dict[str, Any]) -> dict[str, Any]:
    """Rename it (``name``) and/or change its ``rules``."""
    values: dict[str, Any] = {}
    if "name" in data:
        values["name"] = _name(data["name"])
    if "rules" in data:
        parse_rules(data["rules"])
        values["rules"] = data["rules"]
    with ctx.tx() as conn:
        _segment(conn, segment_id)
        store.update(conn, segment_id, values, now=ctx.now())
        return segment_json(_segment(conn, segment_id))


def copy_segment(ctx: Context, segment_id: int) -> dict[str, Any]:
    """A new segment with the same rules, named "Copy of NAME"."""
    with ctx.tx() as conn:
        original = _segment(conn, segment_id)
        name = f"Copy of {original.name}"[:MAX_NAME]
        copy_id = store.insert(conn, name=name, rules=original.rules, now=ctx.now())
        return segment_json(_segment(conn, copy_id))


def delete_segment(ctx: Context, segment_id: int, *, actor: Actor) -> None:
    """Delete the segment, unless a scheduled or sending mailing uses it
    (``Conflict``, ``segment_in_use``, naming them). Drafts and finished
    mailings that named it keep their place but no segment: a draft must be
    given another before it can be sent."""
    with ctx.tx() as conn:
        segment = _segment(conn, segment_id)
        using = store.mailings_using(conn, segment_id, IN_USE)
        if using:
            names = ", ".join(f"“{name}” ({status})" for _, name, status in using)
            noun = "mailing" if len(using) == 1 else "mailings"
            raise Conflict(
                f"Segment {segment_id} is used by the {noun} {names}; cancel "
                f"{'it' if len(using) == 1 else 'them'} or choose another segment first.",
                code="segment_in_use",
                manager_message=f"This segment cannot be deleted: the {noun} {names} "
                f"{'uses' if len(using) == 1 else 'use'} it. Cancel "
                f"{'it' if len(using) == 1 else 'them'}, or give "
                f"{'it' if len(using) == 1 else 'them'} another segment, first.")
        store.delete(conn, segment_id)
        audit.record(conn, actor, "segment.delete", f"segment {segment_id} “{segment.name}”")


def get_segment(ctx: Context, segment_id: int) -> dict[str, Any]:
    with ctx.read() as conn:
        return segment_json(_segment(conn, segment_id))


def list_segments(ctx: Context) -> list[dict[str, Any]]:
    with ctx.read() as conn:
        return [segment_json(r) for r in store.list_rows(conn)]


def count_segment(ctx: Context, segment_id: int) -> dict[str, int]:
    """``{"count", "email", "sms"}`` now: matching, reachable by email, by SMS."""
    with ctx.read() as conn:
        return count_reachable(conn, parse_rules(_segment(conn, segment_id).rules), now=ctx.now())


def count_rules(ctx: Context, rules: Any) -> dict[str, int]:
    """The live count of a rule tree that is not saved yet (the UI's builder)."""
    parsed = parse_rules(rules)
    with ctx.read() as conn:
        return count_reachable(conn, parsed, now=ctx.now())


# -- what the builder offers ------------------------------------------------------------


def attributes_in_use(ctx: Context) -> list[tuple[str, str]]:
    """``(key, kind)`` of the attributes the newest :data:`ATTRIBUTE_SAMPLE`
    customers have, sorted by key; ``kind`` by
    :func:`~tidings.domain.attributes.kind_of` (``boolean``, ``number``,
    ``date``, ``text``, ``list``). Keys a rule cannot name are left out."""
    with ctx.read() as conn:
        sample = customer_store.sample_attributes(conn, limit=ATTRIBUTE_SAMPLE)
    values: dict[str, list[object]] = {}
    for attributes in sample:
        for key, value in attributes.items():
            values.setdefault(key, []).append(value)
    return [(key, kind_of(found)) for key, found in sorted(values.items())
            if ATTRIBUTE_KEY.fullmatch(key)]


def mailing_choices(ctx: Context, *, also: list[int] | None = None) -> list[tuple[int, str]]:
    """``(id, label)`` of the mailings a rule may name (those that were sent or
    are being sent, the newest first), plus ``also`` (ids a saved rule names)."""
    with ctx.read() as conn:
        found = [(i, f"{name} ({'SMS' if channel == 'sms' else 'email'})")
                 for i, name, channel in store.mailings_sent(conn, limit=200)]
        missing = [i for i in (also or []) if i not in {f[0] for f in found}]
        names = store.mailing_names(conn, missing)
    return found + [(i, names.get(i, f"Mailing {i} (deleted)")) for i in missing]
