"""The segment rule builder: form fields to the contract's rule JSON and back.

The builder shows one group of conditions matched by *all*, *any* or *none*
of them, each condition optionally negated ("does not match"). That is
``{"all": [...]}``, ``{"any": [...]}`` or ``{"not": {"any": [...]}}`` with leaves
or ``{"not": leaf}`` inside. Deeper trees are edited as JSON. Only the shape
and the typing of values typed into text boxes are handled here; whether a
rule is valid is decided by :func:`tidings.domain.segments.parse_rules`, whose
error path (``rules.all[2]``) is mapped back to the row it concerns.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import FormData

from tidings.domain.attributes import NUMERIC_TEXT, typed_value
from tidings.domain.segments import ATTRIBUTE_PREFIX, FIELDS, FieldType
from tidings.errors import InvalidInput

ATTRIBUTE = "attributes"
FIELD_LABELS: dict[str, str] = {
    "email": "Email", "first_name": "First name", "last_name": "Last name", "phone": "Phone",
    "external_id": "External id", "email_status": "Email status", "sms_status": "SMS status",
    "created_at": "Created at", "last_order_at": "Last order at",
    "orders_count": "Number of orders", "orders_total": "Orders total", ATTRIBUTE: "Attribute…",
}
OPERATORS: dict[str, str] = {
    "eq": "is", "ne": "is not", "lt": "is less than", "lte": "is at most",
    "gt": "is more than", "gte": "is at least", "in": "is one of (comma-separated)",
    "contains": "contains", "exists": "is present (yes or no)",
}
MATCHES = {"all": "all of", "any": "any of", "none": "none of"}
_ROW_PATH = re.compile(r"^rules(?:\.not)?\.(?:all|any)\[(\d+)\]")


@dataclass(frozen=True, kw_only=True)
class Row:
    negate: bool = False
    field: str = "email"
    key: str = ""
    op: str = "eq"
    value: str = ""
    error: str | None = None

    @property
    def name(self) -> str:
        return f"{ATTRIBUTE_PREFIX}{self.key.strip()}" if self.field == ATTRIBUTE else self.field


@dataclass(frozen=True, kw_only=True)
class Builder:
    """What the rule form shows: the group's match, its rows, or JSON for other trees."""

    match: str = "all"
    rows: tuple[Row, ...] = ()
    mode: str = "builder"
    json_text: str = "{}"
    error: str | None = None

    def with_error(self, exc: InvalidInput) -> Builder:
        """The builder with ``exc`` shown next to its row, or above the rules."""
        found = _ROW_PATH.match(exc.field or "") if self.mode == "builder" else None
        if found and int(found.group(1)) < len(self.rows):
            index = int(found.group(1))
            message = exc.message.split(": ", 1)[-1]
            rows = tuple(replace(r, error=message) if i == index else r
                         for i, r in enumerate(self.rows))
            return replace(self, rows=rows)
        return replace(self, error=exc.message)


def _typed(field: str, op: str, text: str) -> Any:
    text = text.strip()
    if op == "exists":
        return text.lower() not in ("no", "false", "0", "n")
    if op == "contains":  # a substring of text, whatever it looks like
        return text
    if op == "in":
        return [_scalar(field, part) for part in text.split(",") if part.strip()]
    return _scalar(field, text)


def _scalar(field: str, text: str) -> Any:
    """An attribute's value typed by the one rule for typed text
    (:func:`~tidings.domain.attributes.typed_value`); a number field's value
    a number whenever it spells one; any other field's value text."""
    text = text.strip()
    kind = FIELDS.get(field)
    if kind is None and field.startswith(ATTRIBUTE_PREFIX):
        return typed_value(text)
    if kind is FieldType.NUMBER and NUMERIC_TEXT.fullmatch(text):
        return float(text) if "." in text else int(text)
    return text


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def rules_of(builder: Builder) -> Any:
    """The rule JSON the builder describes; :class:`InvalidInput` for unreadable JSON."""
    if builder.mode == "json":
        try:
            return json.loads(builder.json_text or "{}")
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"The rules are not valid JSON: {exc.msg} (line {exc.lineno}).",
                               field="rules") from None
    leaves: list[Any] = []
    for row in builder.rows:
        leaf = {"field": row.name, "op": row.op, "value": _typed(row.name, row.op, row.value)}
        leaves.append({"not": leaf} if row.negate else leaf)
    if not leaves:
        return {}
    if builder.match == "none":
        return {"not": {"any": leaves}}
    return {builder.match if builder.match in ("all", "any") else "all": leaves}


def from_form(form: FormData) -> Builder:
    """The builder as submitted; rows whose value and key are both empty are dropped."""
    columns = [form.getlist(name) for name in ("negate", "field", "key", "op", "value")]
    rows = []
    for negate, field, key, op, value in zip(*columns, strict=False):
        if not str(value).strip() and op != "exists" and not str(key).strip():
            continue
        rows.append(Row(negate=negate == "not", field=str(field), key=str(key), op=str(op),
                        value=str(value)))
    mode = "json" if form.get("mode") == "json" else "builder"
    return Builder(match=str(form.get("match", "all")), rows=tuple(rows), mode=mode,
                   json_text=str(form.get("rules_json", "{}")))


def _row(rule: Any) -> Row | None:
    negate = isinstance(rule, dict) and set(rule) == {"not"}
    leaf = rule["not"] if negate else rule
    if not isinstance(leaf, dict) or set(leaf) != {"field", "op", "value"}:
        return None
    name = str(leaf["field"])
    field, key = (ATTRIBUTE, name[len(ATTRIBUTE_PREFIX):]) if name.startswith(ATTRIBUTE_PREFIX) \
        else (name, "")
    value = leaf["value"]
    text = ("yes" if value else "no") if leaf["op"] == "exists" else _text(value)
    return Row(negate=negate, field=field, key=key, op=str(leaf["op"]), value=text)


def from_rules(rules: Any) -> Builder:
    """The builder showing stored ``rules``: as rows when they fit, else as JSON."""
    text = json.dumps(rules, indent=2, ensure_ascii=False)
    match, items = "all", None
    if rules == {}:
        items = []
    elif isinstance(rules, dict) and set(rules) == {"not"} and isinstance(rules["not"], dict) \
            and set(rules["not"]) == {"any"}:
        match, items = "none", rules["not"]["any"]
    elif isinstance(rules, dict) and len(rules) == 1 and set(rules) <= {"all", "any"}:
        match, items = next(iter(rules)), next(iter(rules.values()))
    elif _row(rules) is not None:
        items = [rules]
    rows = [_row(item) for item in items] if isinstance(items, list) else [None]
    if any(row is None for row in rows):
        return Builder(mode="json", json_text=text)
    return Builder(match=match, rows=tuple(r for r in rows if r is not None), json_text=text)
