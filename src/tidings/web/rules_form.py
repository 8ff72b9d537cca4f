"""The segment rule builder: form fields to the contract's rule JSON and back.

The builder shows one group of conditions matched by *all*, *any* or *none*
of them, each condition optionally negated ("does not match"). That is
``{"all": [...]}``, ``{"any": [...]}`` or ``{"not": {"any": [...]}}`` with leaves
or ``{"not": leaf}`` inside. Deeper trees are edited as JSON.

Each condition names a field: one of the customer's own, a computed one
(last open, mailings received), an attribute the shop's customers have (with
the kind :func:`~tidings.domain.attributes.kind_of` read from them), or any
other attribute by name. The field's *kind* decides the operators offered,
in words ("is in the last … days", "never happened"), and the control its
value is entered with (:func:`view`): a date picker, a number of days,
yes/no, a list of statuses or mailings, or text. Some builder operators are
words for rule forms: ``present``/``absent`` are ``exists`` true/false, and
``more_than_days`` is ``lt {"days_ago": N}``; relative dates stay relative.

Whether a rule is valid is decided by :func:`tidings.domain.segments.parse_rules`,
whose error path (``rules.all[2]``) is mapped back to the row it concerns, and
whose message is put in the builder's words by :func:`rule_error` ("Condition
3: Number of orders needs a number", not ``rules.all[2]: "orders_count" gt ...``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from starlette.datastructures import FormData

from tidings.domain.attributes import NUMERIC_TEXT, flag_of, typed_value
from tidings.domain.customers import CustomerStatus
from tidings.domain.segments import ATTRIBUTE_PREFIX, FIELDS, FieldType
from tidings.errors import InvalidInput

ATTRIBUTE = "attributes"  # the "Other attribute…" choice, named in the key box
FIELD_LABELS: dict[str, str] = {
    "email": "Email", "first_name": "First name", "last_name": "Last name", "phone": "Phone",
    "external_id": "External id", "email_status": "Email subscription",
    "sms_status": "SMS subscription", "created_at": "Signed up", "last_order_at": "Last order",
    "orders_count": "Number of orders", "orders_total": "Total spent",
    "last_opened_at": "Last opened an email", "last_clicked_at": "Last clicked a link",
    "received_mailing": "Mailings received", "opened_mailing": "Mailings opened",
    "clicked_mailing": "Mailings clicked", ATTRIBUTE: "Other attribute…",
}
#: The builder's groups of fields, in the order the field list shows them.
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Customer", ("email", "first_name", "last_name", "phone", "external_id", "created_at",
                  "email_status", "sms_status")),
    ("Orders", ("orders_count", "orders_total", "last_order_at")),
    ("Engagement", ("last_opened_at", "last_clicked_at", "received_mailing", "opened_mailing",
                    "clicked_mailing")),
)
#: The kind of each customer field (attributes take theirs from the data).
FIELD_KINDS: dict[str, str] = {
    name: {FieldType.STRING: "text", FieldType.NUMBER: "number", FieldType.DATETIME: "datetime",
           FieldType.MAILING: "mailing"}[kind] for name, kind in FIELDS.items()
} | {"email_status": "status", "sms_status": "status"}
#: Every operator by its generic words (also used to name one in an error).
OPERATORS: dict[str, str] = {
    "eq": "is", "ne": "is not", "lt": "is less than", "lte": "is at most",
    "gt": "is more than", "gte": "is at least", "in": "is one of (comma-separated)",
    "contains": "contains", "exists": "is present (yes or no)",
    "within_days": "is in the last … days", "more_than_days": "is more than … days ago",
    "present": "is filled in", "absent": "is empty",
}
#: The operators each kind offers, in its words.
KIND_OPERATORS: dict[str, tuple[tuple[str, str], ...]] = {
    "text": (("eq", "is"), ("ne", "is not"), ("contains", "contains"),
             ("in", "is one of (comma-separated)"), ("present", "is filled in"),
             ("absent", "is empty")),
    "number": (("eq", "is"), ("ne", "is not"), ("gt", "is more than"), ("gte", "is at least"),
               ("lt", "is less than"), ("lte", "is at most"),
               ("in", "is one of (comma-separated)"), ("present", "is filled in"),
               ("absent", "is empty")),
    "datetime": (("within_days", "is in the last … days"),
                 ("more_than_days", "is more than … days ago"), ("gte", "is on or after"),
                 ("lt", "is before"), ("present", "happened"), ("absent", "never happened")),
    "date": (("gte", "is on or after"), ("lt", "is before"), ("eq", "is"),
             ("present", "is filled in"), ("absent", "is empty")),
    "boolean": (("eq", "is"), ("present", "is filled in"), ("absent", "is empty")),
    "status": (("eq", "is"), ("ne", "is not")),
    "mailing": (("eq", "include"), ("ne", "do not include")),
    "list": (("present", "is filled in"), ("absent", "is empty")),
    "any": tuple((op, OPERATORS[op]) for op in ("eq", "ne", "lt", "lte", "gt", "gte", "in",
                                                 "contains", "exists")),
}
KIND_WORDS = {"text": "text", "number": "number", "date": "date", "boolean": "yes/no",
              "list": "list"}
MATCHES = {"all": "all of", "any": "any of", "none": "none of"}
YES_NO = (("true", "yes"), ("false", "no"))
STATUSES = tuple((s.value, s.value) for s in CustomerStatus)
_ROW_PATH = re.compile(r"^rules(?:\.not)?\.(?:all|any)\[(\d+)\](?:\.not)?$")
_RULE_PATH = re.compile(r"^rules(?:\.(?:all|any|not)(?:\[\d+\])?)*$")
# Pieces of parse_rules' messages that name the rule JSON, and their builder words.
_QUOTED_FIELD = re.compile(r'^"(?P<field>[A-Za-z0-9_.]+)"'
                           r"(?: (?:lte|lt|gte|gt|eq|ne|in|contains|within_days))?(?= )")
_NOT_FOR_FIELD = re.compile(r'^operator "(?P<op>[a-z_]+)" does not apply to \w+ field "(?P<field>[^"]+)"$')
_ATTRIBUTE_NAME = re.compile(r'^attribute field "attributes\.(?P<key>.*)" must be attributes\.KEY')
_DATE_HINT = re.compile(r"an ISO 8601 date-time with an offset, e\.g\. [^,]+, or a date")
_DATE_WORDS = ("a date like 2024-05-01, or a date and time with its offset from UTC, "
               "like 2024-05-01T09:00+02:00")
_DAYS = re.compile(r"needs a whole number of days from 0 to (\d+)")


@dataclass(frozen=True, kw_only=True)
class Row:
    negate: bool = False
    field: str = "email"
    key: str = ""
    op: str = "eq"
    value: str = ""
    kind: str = ""  # the field's kind as the form showed it; "" = from the field
    error: str | None = None

    @property
    def name(self) -> str:
        """The rule's field: ``attributes.KEY`` for "Other attribute…"."""
        return f"{ATTRIBUTE_PREFIX}{self.key.strip()}" if self.field == ATTRIBUTE else self.field

    @property
    def effective_kind(self) -> str:
        if self.field == ATTRIBUTE:
            return "any"
        return self.kind or FIELD_KINDS.get(self.field) or (
            "any" if self.field.startswith(ATTRIBUTE_PREFIX) else "text")


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


# -- what a row shows -------------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class RowView:
    """A row as the page draws it: the field list, the operators of its kind,
    and the control its value is entered with (``text``, ``number``, ``days``,
    ``date``, ``select`` with ``options``, or ``none``)."""

    row: Row
    kind: str
    fields: tuple[tuple[str, tuple[tuple[str, str], ...]], ...]
    operators: tuple[tuple[str, str], ...]
    control: str
    options: tuple[tuple[str, str], ...] = ()


def field_groups(attributes: Sequence[tuple[str, str]]
                 ) -> tuple[tuple[str, tuple[tuple[str, str], ...]], ...]:
    """The field list: the customer's fields by group, then the attributes the
    customers have (with their kind), then "Other attribute…"."""
    groups = [(label, tuple((f, FIELD_LABELS[f]) for f in names)) for label, names in GROUPS]
    found = tuple((ATTRIBUTE_PREFIX + key, f"{key} ({KIND_WORDS.get(kind, kind)})")
                  for key, kind in attributes)
    groups.append(("Attributes", (*found, (ATTRIBUTE, FIELD_LABELS[ATTRIBUTE]))))
    return tuple(groups)


def view(row: Row, *, attributes: Sequence[tuple[str, str]] = (),
         mailings: Sequence[tuple[int, str]] = ()) -> RowView:
    """How to draw ``row``; an operator its kind does not offer is offered too
    (a stored rule shows as it is), under its generic words."""
    kinds = {ATTRIBUTE_PREFIX + key: kind for key, kind in attributes}
    kind = kinds.get(row.field) or row.effective_kind
    row = replace(row, kind=kind)
    operators = KIND_OPERATORS[kind]
    if row.op not in {op for op, _ in operators}:
        operators = (*operators, (row.op, OPERATORS.get(row.op, row.op)))
    op = row.op
    options: tuple[tuple[str, str], ...] = ()
    if op in ("present", "absent"):
        control = "none"
    elif op in ("within_days", "more_than_days"):
        control = "days"
    elif op == "in" or kind in ("text", "any", "list"):
        control = "text"
    elif kind == "number":
        control = "number"
    elif kind in ("datetime", "date"):
        control = "date"
    else:
        control = "select"
        options = {"boolean": YES_NO, "status": STATUSES}.get(kind) or tuple(
            (str(i), label) for i, label in mailings)
        if kind == "mailing":
            options = (("", "Choose a mailing"), *options)
    return RowView(row=row, kind=kind, fields=field_groups(attributes), operators=operators,
                   control=control, options=options)


def adjusted(row: Row, *, attributes: Sequence[tuple[str, str]] = ()) -> Row:
    """``row`` after its field changed: the kind of the new field, and its first
    operator when the one chosen does not apply to it (the value kept when it
    still fits)."""
    kinds = {ATTRIBUTE_PREFIX + key: kind for key, kind in attributes}
    kind = kinds.get(row.field) or replace(row, kind="").effective_kind
    offered = [op for op, _ in KIND_OPERATORS[kind]]
    if row.op in offered:
        return replace(row, kind=kind)
    return replace(row, kind=kind, op=offered[0], value="")


# -- the form and the rule JSON ---------------------------------------------------------


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
    elif text.startswith('"days_ago"'):
        text = "A number of days ago can only be compared with a date"
    elif (found := _QUOTED_FIELD.match(text)) and found["field"] != "exists":
        text = _field_words(found["field"]) + text[found.end():]
    text = _DATE_HINT.sub(_DATE_WORDS, text)
    text = _DAYS.sub(r"needs a number of days: a whole number from 0 to \1", text)
    text = text.replace("needs a mailing id, got", "needs a mailing: choose one, not")
    text = text[0].upper() + text[1:] if text else text
    return f"{condition_name(exc.field)}: {text}" if with_condition else text


def _scalar(row: Row, text: str) -> Any:
    """A value typed by the row's kind; text a kind cannot read stays text,
    for :func:`~tidings.domain.segments.parse_rules` to name the problem."""
    text = text.strip()
    kind = row.effective_kind
    if kind == "any":
        if row.name.startswith(ATTRIBUTE_PREFIX):
            return typed_value(text)  # the one rule for typed text
        # at most 30 characters: a longer "number" is text for the rule check to refuse
        if FIELDS.get(row.name) is FieldType.NUMBER and NUMERIC_TEXT.fullmatch(text) and len(text) <= 30:
            return float(text) if "." in text else int(text)
        return text
    if kind == "number" and NUMERIC_TEXT.fullmatch(text) and len(text) <= 30:
        return float(text) if "." in text else int(text)
    if kind == "boolean":
        flag = flag_of(text)
        return text if flag is None else flag
    if kind == "mailing" and text.isdigit():
        return int(text)
    return text


def _days(text: str) -> Any:
    text = text.strip()
    return int(text) if text.isdigit() else text


def leaf_of(row: Row) -> dict[str, Any]:
    """The rule leaf a row describes (without its negation)."""
    op, text = row.op, row.value
    if op in ("present", "absent"):
        return {"field": row.name, "op": "exists", "value": op == "present"}
    if op == "exists":
        return {"field": row.name, "op": op,
                "value": text.strip().lower() not in ("no", "false", "0", "n")}
    if op == "within_days":
        return {"field": row.name, "op": op, "value": _days(text)}
    if op == "more_than_days":
        return {"field": row.name, "op": "lt", "value": {"days_ago": _days(text)}}
    if op == "contains":  # a substring of text, whatever it looks like
        return {"field": row.name, "op": op, "value": text.strip()}
    if op == "in":
        return {"field": row.name, "op": op,
                "value": [_scalar(row, part) for part in text.split(",") if part.strip()]}
    return {"field": row.name, "op": op, "value": _scalar(row, text)}


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
        leaf = leaf_of(row)
        leaves.append({"not": leaf} if row.negate else leaf)
    if not leaves:
        return {}
    if builder.match == "none":
        return {"not": {"any": leaves}}
    return {builder.match if builder.match in ("all", "any") else "all": leaves}


_NO_VALUE = ("exists", "present", "absent")


def row_of(values: dict[str, str]) -> Row:
    """One row from its fields (``negate``, ``field``, ``key``, ``op``, ``value``, ``kind``)."""
    return Row(negate=values.get("negate") == "not", field=values.get("field") or "email",
               key=values.get("key", ""), op=values.get("op") or "eq",
               value=values.get("value", ""), kind=values.get("kind", ""))


def from_form(form: FormData) -> Builder:
    """The builder as submitted; rows whose value and key are both empty are
    dropped (unless their operator needs no value)."""
    names = ("negate", "field", "key", "op", "value", "kind")
    columns = {name: [str(v) for v in form.getlist(name)] for name in names}
    count = len(columns["field"])
    rows = []
    for i in range(count):
        values = {name: (found[i] if i < len(found) else "") for name, found in columns.items()}
        if not values["value"].strip() and values["op"] not in _NO_VALUE \
                and not values["key"].strip():
            continue
        rows.append(row_of(values))
    mode = "json" if form.get("mode") == "json" else "builder"
    return Builder(match=str(form.get("match", "all")), rows=tuple(rows), mode=mode,
                   json_text=str(form.get("rules_json", "{}")))


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, list):
        return ", ".join(_text(v) for v in value)
    return "" if value is None else str(value)


def _row(rule: Any, kinds: dict[str, str]) -> Row | None:
    negate = isinstance(rule, dict) and set(rule) == {"not"}
    leaf = rule["not"] if negate else rule
    if not isinstance(leaf, dict) or set(leaf) != {"field", "op", "value"}:
        return None
    name, op, value = str(leaf["field"]), str(leaf["op"]), leaf["value"]
    if name in kinds or not name.startswith(ATTRIBUTE_PREFIX):
        field, key = name, ""
        kind = kinds.get(name) or FIELD_KINDS.get(name, "text")
    else:
        field, key, kind = ATTRIBUTE, name[len(ATTRIBUTE_PREFIX):], "any"
    if isinstance(value, dict):
        if op != "lt" or set(value) != {"days_ago"}:
            return None  # other relative forms are edited as JSON
        op, value = "more_than_days", value["days_ago"]
    elif op == "exists" and kind != "any":
        op, value = ("present" if value else "absent"), ""
    text = ("yes" if value else "no") if op == "exists" else _text(value)
    return Row(negate=negate, field=field, key=key, op=op, value=text, kind=kind)


def from_rules(rules: Any, *, attributes: Sequence[tuple[str, str]] = ()) -> Builder:
    """The builder showing stored ``rules``: as rows when they fit, else as JSON.
    ``attributes`` (key, kind) are those the field list offers by name."""
    kinds = {ATTRIBUTE_PREFIX + key: kind for key, kind in attributes}
    text = json.dumps(rules, indent=2, ensure_ascii=False)
    match, items = "all", None
    if rules == {}:
        items = []
    elif isinstance(rules, dict) and set(rules) == {"not"} and isinstance(rules["not"], dict) \
            and set(rules["not"]) == {"any"}:
        match, items = "none", rules["not"]["any"]
    elif isinstance(rules, dict) and len(rules) == 1 and set(rules) <= {"all", "any"}:
        match, items = next(iter(rules)), next(iter(rules.values()))
    elif _row(rules, kinds) is not None:
        items = [rules]
    rows = [_row(item, kinds) for item in items] if isinstance(items, list) else [None]
    if any(row is None for row in rows):
        return Builder(mode="json", json_text=text)
    return Builder(match=match, rows=tuple(r for r in rows if r is not None), json_text=text)


def mailings_named(rules: Any) -> list[int]:
    """The mailing ids that leaves of ``rules`` name (so the field list can offer them)."""
    found: list[int] = []
    if isinstance(rules, dict):
        if FIELD_KINDS.get(str(rules.get("field"))) == "mailing":
            value = rules.get("value")
            found.extend(v for v in (value if isinstance(value, list) else [value])
                         if isinstance(v, int) and not isinstance(v, bool))
        for part in rules.values():
            found.extend(mailings_named(part))
    elif isinstance(rules, list):
        for part in rules:
            found.extend(mailings_named(part))
    return found
