"""The segment rule builder: form fields to the contract's rule JSON and back.

The builder shows one group of conditions matched by *all*, *any* or *none*
of them, each condition optionally negated ("does not match"). That is
``{"all": [...]}``, ``{"any": [...]}`` or ``{"not": {"any": [...]}}`` with leaves
or ``{"not": leaf}`` inside. Deeper trees are edited as JSON. Only the shape
and the typing of values typed into text boxes are handled here; whether a
rule is valid is decided by :func:`tidings.domain.segments.parse_rules`, whose
error path (``rules.all[2]``) is mapped back to the row it concerns, and whose
message is put in the builder's words by :func:`rule_error` ("Condition 3:
Number of orders needs a number", not ``rules.all[2]: "orders_count" gt ...``).
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
_RULE_PATH = re.compile(r"^rules(?:\.(?:all|any|not)(?:\[\d+\])?)*$")
# Pieces of parse_rules' messages that name the rule JSON, and their builder words.
_QUOTED_FIELD = re.compile(r'^"(?P<field>[A-Za-z0-9_.]+)"(?: (?:lte|lt|gte|gt|eq|ne|in|contains))?(?= )')
_NOT_FOR_FIELD = re.compile(r'^operator "(?P<op>[a-z]+)" does not apply to \w+ field "(?P<field>[^"]+)"$')
_ATTRIBUTE_NAME = re.compile(r'^attribute field "attributes\.(?P<key>.*)" must be attributes\.KEY')
_DATE_HINT = re.compile(r"an ISO 8601 date-time with an offset, e\.g\. [^,]+, or a date")
_DATE_WORDS = ("a date like 2024-05-01, or a date and time with its offset from UTC, "
               "like 2024-05-01T09:00+02:00")


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
            message = rule_error(exc, with_condition=False)
            rows = tuple(replace(r, error=message) if i == index else r
                         for i, r in enumerate(self.rows))
            return replace(self, rows=rows)
        return replace(self, error=rule_error(exc))


def is_rule_path(field: str | None) -> bool:
    """Whether ``field`` is the path of a rule (``rules``, ``rules.all[2].not``)."""
    return bool(field) and _RULE_PATH.match(field or "") is not None


def condition_name(path: str) -> str:
    """A rule path as the builder numbers its conditions: ``rules.all[1]`` is
    "Condition 2", ``rules.not.any[0]`` "Condition 1", a nested
    ``rules.all[0].any[2]`` "Condition 1.3", the whole tree "The rules"."""
    numbers = [str(int(n) + 1) for n in re.findall(r"\[(\d+)\]", path)]
    return f"Condition {'.'.join(numbers)}" if numbers else "The rules"


def _field_words(name: str) -> str:
    if name.startswith(ATTRIBUTE_PREFIX):
        return f"The attribute “{name[len(ATTRIBUTE_PREFIX):]}”"
    return FIELD_LABELS.get(name, f"“{name}”")


def rule_error(exc: InvalidInput, *, with_condition: bool = True) -> str:
    """``exc`` from :func:`~tidings.domain.segments.parse_rules` in the builder's
    words: the condition's number (unless ``with_condition`` is false, for the
    message shown on the condition's own row), its field by its label, an
    operator by what the builder calls it, dates as a manager types them."""
    if exc.manager_message != exc.message or not exc.field \
            or not exc.message.startswith(f"{exc.field}: "):
        return exc.manager_message
    text = exc.message[len(exc.field) + 2:]
    if found := _NOT_FOR_FIELD.match(text):
        field = _field_words(found["field"])
        text = (f"“{OPERATORS.get(found['op'], found['op'])}” does not apply to "
                f"{field[:1].lower()}{field[1:]}")
    elif found := _ATTRIBUTE_NAME.match(text):
        text = f"An attribute name may hold only letters, digits and _, not “{found['key']}”"
    elif text.startswith('"in" needs a non-empty list'):
        text = "“is one of” needs at least one value"
    elif text.startswith('"in" needs values of one type'):
        text = "The values of “is one of” must be all text or all numbers"
    elif (found := _QUOTED_FIELD.match(text)) and found["field"] != "exists":
        text = _field_words(found["field"]) + text[found.end():]
    text = _DATE_HINT.sub(_DATE_WORDS, text)
    text = text[0].upper() + text[1:] if text else text
    return f"{condition_name(exc.field)}: {text}" if with_condition else text


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
    if kind is FieldType.NUMBER and NUMERIC_TEXT.fullmatch(text) and len(text) <= 30:
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
        except (ValueError, RecursionError):  # a number of 4,300 digits; nesting past Python's limit
            raise InvalidInput("The rules are too large or nested too deep to read.",
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
