"""Segment rules: the rule tree, its validation, and its meaning.

A rule is JSON as in the contract::

    {}                                   everyone
    {"all": [R, ...]}                    every sub-rule holds
    {"any": [R, ...]}                    at least one sub-rule holds
    {"not": R}                           R does not hold
    {"field": F, "op": O, "value": V}    a leaf

:func:`parse_rules` turns it into frozen dataclasses or raises
:class:`~tidings.errors.InvalidInput` whose message starts with the path of
the bad rule, e.g. ``rules.all[2].any[0]: unknown operator "like"``.
:func:`evaluate` is the reference meaning of a rule for one customer; the SQL
compiler (``tidings.store.segments``) must agree with it on every database.

The meaning of a leaf:

- A field that is missing (NULL) satisfies no comparison except ``ne``
  ("a customer without a first name is not Ann") and ``exists: false``.
- Strings compare by code point and ``eq``/``in`` are exact, except that
  ``email`` values are lowercased as stored; ``contains`` is a
  case-insensitive substring test (SQLite folds only ASCII letters).
- Datetime values are ISO 8601 strings with an offset; a bare date means
  midnight UTC. They may also be relative, and stay relative in the stored
  rule: ``{"days_ago": N}`` (with ``lt lte gt gte``) is the moment N days
  before the evaluation's ``now``, and the operator ``within_days`` with a
  number N holds when the field lies between N days before ``now`` and ``now``
  ("last order in the last 90 days"). ``now`` is given by the caller (the
  service's clock), so the same rule selects other customers as time passes.
- ``last_opened_at`` and ``last_clicked_at`` are the latest open and click of
  any message the customer got (missing when none).
- ``received_mailing``, ``opened_mailing`` and ``clicked_mailing`` are the
  sets of mailings (by id) the customer received (sent and not bounced),
  opened, clicked: ``eq X`` holds when X is in the set, ``ne X`` when it is
  not, ``in [X, Y]`` when any is, ``exists`` when the set is (not) empty.
- ``attributes.KEY`` is typed by the rule's value, by the one typing rule
  of :mod:`tidings.domain.attributes`: a string compares string attributes as
  text; a number compares number attributes, and strings that spell a decimal
  number (``"42"``, ``"-1.5"``, as a CSV import stores them), numerically;
  ``true``/``false`` (``eq``/``ne`` only) compare booleans, and the strings
  ``true``/``false`` in any case. An attribute of another type counts as
  missing for that comparison. ``exists`` means the key is present and not null.
"""

from __future__ import annotations

import enum
import math
import re
import typing as _t
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import TypeAlias

from tidings.domain.attributes import NUMERIC_TEXT, flag_of
from tidings.domain.bounds import MAX_NUMBER, bounded_moment
from tidings.errors import InvalidInput


class FieldType(enum.StrEnum):
    STRING = "string"
    NUMBER = "number"
    DATETIME = "datetime"
    MAILING = "mailing"  # a set of mailing ids


#: The customer fields a rule may test. Adding a field is one line here and one
#: in ``tidings.store.segments.COLUMNS``. ``attributes.KEY`` is allowed besides.
FIELDS: dict[str, FieldType] = {
    "email": FieldType.STRING,
    "first_name": FieldType.STRING,
    "last_name": FieldType.STRING,
    "phone": FieldType.STRING,
    "external_id": FieldType.STRING,
    "email_status": FieldType.STRING,
    "sms_status": FieldType.STRING,
    "created_at": FieldType.DATETIME,
    "last_order_at": FieldType.DATETIME,
    "orders_count": FieldType.NUMBER,
    "orders_total": FieldType.NUMBER,
    "last_opened_at": FieldType.DATETIME,
    "last_clicked_at": FieldType.DATETIME,
    "received_mailing": FieldType.MAILING,
    "opened_mailing": FieldType.MAILING,
    "clicked_mailing": FieldType.MAILING,
}
#: Fields that are not columns of ``customers`` but computed from the
#: customer's messages (the customer mapping given to :func:`evaluate` may
#: carry them; missing means "none").
DERIVED = frozenset({"last_opened_at", "last_clicked_at", "received_mailing", "opened_mailing",
                     "clicked_mailing"})
ATTRIBUTE_PREFIX = "attributes."
ATTRIBUTE_KEY = re.compile(r"[A-Za-z0-9_]+")

#: Limits that keep one segment's SQL within every database's parameter limits
#: (and its parsing within Python's recursion limit); numbers in rules lie
#: within ``MAX_NUMBER``, datetimes within the years 1900-2999.
MAX_DEPTH = 20
MAX_RULES = 500
MAX_VALUES = 10_000
#: The furthest a relative date reaches back: a hundred years.
MAX_DAYS = 36_500


class Op(enum.StrEnum):
    EQ = "eq"
    NE = "ne"
    LT = "lt"
    LTE = "lte"
    GT = "gt"
    GTE = "gte"
    IN = "in"
    CONTAINS = "contains"
    EXISTS = "exists"
    WITHIN_DAYS = "within_days"


ORDERING = frozenset({Op.LT, Op.LTE, Op.GT, Op.GTE})
_OPS: dict[FieldType | None, frozenset[Op]] = {
    FieldType.STRING: frozenset(Op) - {Op.WITHIN_DAYS},
    FieldType.NUMBER: frozenset(Op) - {Op.CONTAINS, Op.WITHIN_DAYS},
    FieldType.DATETIME: frozenset(Op) - {Op.CONTAINS},
    FieldType.MAILING: frozenset({Op.EQ, Op.NE, Op.IN, Op.EXISTS}),
    None: frozenset(Op) - {Op.WITHIN_DAYS},  # attributes: checked against the value's type
}
_LOWERCASED = frozenset({"email"})



@dataclass(frozen=True, kw_only=True)
class DaysAgo:
    """The moment ``days`` days before the evaluation's ``now`` (``{"days_ago": N}``)."""

    days: int

    def at(self, now: datetime) -> datetime:
        return now - timedelta(days=self.days)


Value: TypeAlias = str | int | float | bool | datetime | DaysAgo


@dataclass(frozen=True, kw_only=True)
class Everyone:
    """Every customer."""


@dataclass(frozen=True, kw_only=True)
class All:
    rules: tuple[Rule, ...]


@dataclass(frozen=True, kw_only=True)
class Any:
    rules: tuple[Rule, ...]


@dataclass(frozen=True, kw_only=True)
class Not:
    rule: Rule


@dataclass(frozen=True, kw_only=True)
class Leaf:
    """``field op value``; ``value`` is a tuple for ``in``, a bool for ``exists``,
    an aware datetime or a :class:`DaysAgo` for datetime fields, a number of
    days for ``within_days``, a mailing id for mailing fields."""

    field: str
    op: Op
    value: Value | tuple[Value, ...]


Rule: TypeAlias = Everyone | All | Any | Not | Leaf


def attribute_key(field: str) -> str | None:
    """``KEY`` for a field ``attributes.KEY``, else ``None``."""
    if field.startswith(ATTRIBUTE_PREFIX):
        return field[len(ATTRIBUTE_PREFIX) :]
    return None


def parse_rules(obj: object, *, path: str = "rules") -> Rule:
    """The rule tree of the JSON value ``obj``, validated against :data:`FIELDS`.

    Raises :class:`InvalidInput` with ``field`` set to the path of the bad rule
    and a message that starts with that path.
    """
    budget = _Budget()
    return _parse(obj, path, 0, budget)


@dataclass
class _Budget:
    rules: int = 0
    values: int = 0


def _fail(path: str, message: str) -> InvalidInput:
    return InvalidInput(f"{path}: {message}", field=path)


def _parse(obj: object, path: str, depth: int, budget: _Budget) -> Rule:
    if not isinstance(obj, Mapping):
        raise _fail(path, "a rule must be an object")
    if depth > MAX_DEPTH:
        raise _fail(path, f"rules are nested more than {MAX_DEPTH} levels deep")
    budget.rules += 1
    if budget.rules > MAX_RULES:
        raise _fail(path, f"a segment may have at most {MAX_RULES} rules")
    keys = set(obj)
    if not keys:
        return Everyone()
    for group in ("all", "any", "not"):
        if group in keys:
            if keys != {group}:
                extra = ", ".join(f'"{k}"' for k in sorted(map(str, keys - {group})))
                raise _fail(path, f'a rule with "{group}" cannot also have {extra}')
            if group == "not":
                return Not(rule=_parse(obj["not"], f"{path}.not", depth + 1, budget))
            items = obj[group]
            if not isinstance(items, list) or not items:
                raise _fail(f"{path}.{group}", "needs a non-empty list of rules")
            rules = tuple(
                _parse(item, f"{path}.{group}[{i}]", depth + 1, budget)
                for i, item in enumerate(items)
            )
            return All(rules=rules) if group == "all" else Any(rules=rules)
    unknown = keys - {"field", "op", "value"}
    if unknown:
        names = ", ".join(f'"{k}"' for k in sorted(map(str, unknown)))
        raise _fail(
            path,
            f'unknown key {names}; a rule is {{}}, "all", "any", "not" '
            'or "field", "op" and "value"',
        )
    for key in ("field", "op", "value"):
        if key not in keys:
            raise _fail(path, f'a rule with "field", "op" and "value" is missing "{key}"')
    return _parse_leaf(obj["field"], obj["op"], obj["value"], path, budget)


def _parse_leaf(field: object, op: object, value: object, path: str, budget: _Budget) -> Leaf:
    if not isinstance(field, str):
        raise _fail(path, '"field" must be a string')
    key = attribute_key(field)
    ftype: FieldType | None
    if key is not None:
        if not ATTRIBUTE_KEY.fullmatch(key):
            raise _fail(
                path,
                f'attribute field "{field}" must be attributes.KEY where KEY has only '
                "letters, digits and _",
            )
        ftype = None
    elif field in FIELDS:
        ftype = FIELDS[field]
    else:
        raise _fail(
            path, f'unknown field "{field}"; fields are {", ".join(FIELDS)} and attributes.KEY'
        )
    try:
        operator = Op(op) if isinstance(op, str) else None
    except ValueError:
        operator = None
    if operator is None:
        raise _fail(path, f"unknown operator {_show(op)}; operators are {', '.join(Op)}")
    if operator not in _OPS[ftype]:
        kind = "attribute" if ftype is None else ftype
        raise _fail(path, f'operator "{operator}" does not apply to {kind} field "{field}"')

    if operator is Op.WITHIN_DAYS:
        budget.values += 1
        return Leaf(field=field, op=operator, value=_days(field, operator, value, path))
    if operator is Op.EXISTS:
        if not isinstance(value, bool):
            raise _fail(path, f'"exists" needs true or false, got {_show(value)}')
        return Leaf(field=field, op=operator, value=value)
    if operator is Op.IN:
        if not isinstance(value, list) or not value:
            raise _fail(path, f'"in" needs a non-empty list of values, got {_show(value)}')
        budget.values += len(value)
        if budget.values > MAX_VALUES:
            raise _fail(path, f"a segment may compare at most {MAX_VALUES} values")
        items = tuple(_value(field, ftype, operator, v, path) for v in value)
        if ftype is None and len({_kind(v) for v in items}) > 1:
            raise _fail(path, '"in" needs values of one type: all strings or all numbers')
        return Leaf(field=field, op=operator, value=items)
    budget.values += 1
    return Leaf(field=field, op=operator, value=_value(field, ftype, operator, value, path))


def _value(field: str, ftype: FieldType | None, op: Op, value: object, path: str) -> Value:
    """``value`` checked against the field's type (``None``: an attribute)."""
    if isinstance(value, Mapping) and "days_ago" in value:
        if ftype is not FieldType.DATETIME:
            raise _fail(path, f'"days_ago" applies to date fields only, not to "{field}"')
        if op not in ORDERING:
            raise _fail(path, f'"days_ago" needs one of lt, lte, gt, gte, not "{op}"')
        if set(value) != {"days_ago"}:
            raise _fail(path, '"days_ago" must be alone in its object: {"days_ago": N}')
        return DaysAgo(days=_days(field, op, value["days_ago"], path))
    if ftype is FieldType.MAILING:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise _fail(path, f'"{field}" {op} needs a mailing id, got {_show(value)}')
        return value
    if ftype is FieldType.STRING or op is Op.CONTAINS:
        if not isinstance(value, str):
            raise _fail(path, f'"{field}" {op} needs a string, got {_show(value)}')
        return value.lower() if field in _LOWERCASED else value
    if ftype is FieldType.NUMBER:
        if not _is_number(value):
            raise _fail(path, f'"{field}" {op} needs a number, got {_show(value)}')
        return _bounded(field, value, path)
    if ftype is FieldType.DATETIME:
        return _datetime(field, value, path)
    # an attribute: the value's own type decides how it compares
    if isinstance(value, bool):
        if op not in (Op.EQ, Op.NE):
            raise _fail(path, f'"{field}" {op} needs a string or a number, got {_show(value)}')
        return value
    if isinstance(value, str):
        return value
    if _is_number(value):
        return _bounded(field, value, path)
    raise _fail(path, f'"{field}" {op} needs a string, a number or a boolean, got {_show(value)}')


def _bounded(field: str, value: object, path: str) -> int | float:
    assert isinstance(value, int | float)
    if abs(value) > MAX_NUMBER:
        raise _fail(path, f'"{field}" needs a number between -10^15 and 10^15, got {_show(value)}')
    return value


def _days(field: str, op: Op, value: object, path: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_DAYS:
        raise _fail(path, f'"{field}" {op} needs a whole number of days from 0 to {MAX_DAYS}, '
                          f"got {_show(value)}")
    return value


def _is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, float):
        return math.isfinite(value)
    return isinstance(value, int)


def _datetime(field: str, value: object, path: str) -> datetime:
    hint = "an ISO 8601 date-time with an offset, e.g. 2024-05-01T09:00:00+02:00, or a date"
    if not isinstance(value, str):
        raise _fail(path, f'"{field}" needs {hint}, got {_show(value)}')
    if re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", value):
        try:
            parsed = datetime.fromisoformat(value).replace(tzinfo=UTC)
        except ValueError:
            raise _fail(path, f'"{field}" has an invalid date {_show(value)}') from None
    else:
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise _fail(path, f'"{field}" needs {hint}, got {_show(value)}') from None
        if parsed.tzinfo is None:
            raise _fail(path, f'"{field}" needs a timezone offset (like +02:00 or Z) in {value!r}')
    try:
        bounded_moment(parsed, field)
    except InvalidInput as exc:
        raise _fail(path, f'"{field}" {exc.message.removeprefix(field + " ")}') from None
    return parsed


def _kind(value: Value) -> str:
    if isinstance(value, bool):
        return "boolean"
    return "string" if isinstance(value, str) else "number"


def _show(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"' if len(value) <= 60 else f'"{value[:60]}..."'
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


# --- meaning ------------------------------------------------------------------------


def has_relative_dates(rule: Rule) -> bool:
    """Whether ``rule`` selects by the time it is evaluated at (``days_ago``, ``within_days``)."""
    if isinstance(rule, All | Any):
        return any(has_relative_dates(r) for r in rule.rules)
    if isinstance(rule, Not):
        return has_relative_dates(rule.rule)
    return isinstance(rule, Leaf) and (rule.op is Op.WITHIN_DAYS or isinstance(rule.value, DaysAgo))


def evaluate(rule: Rule, customer: Mapping[str, object], *, now: datetime | None = None) -> bool:
    """Whether ``customer`` (a mapping shaped like a row of ``customers``:
    field name to value, ``attributes`` a dict, datetimes aware, and the
    :data:`DERIVED` fields when known) satisfies ``rule`` at ``now`` (default:
    the current time), which relative dates count from.

    This is the reference meaning; the SQL compiler is tested against it.
    """
    return _evaluate(rule, customer, now or datetime.now(UTC))


def _evaluate(rule: Rule, customer: Mapping[str, object], now: datetime) -> bool:
    if isinstance(rule, Everyone):
        return True
    if isinstance(rule, All):
        return all(_evaluate(r, customer, now) for r in rule.rules)
    if isinstance(rule, Any):
        return any(_evaluate(r, customer, now) for r in rule.rules)
    if isinstance(rule, Not):
        return not _evaluate(rule.rule, customer, now)
    return _evaluate_leaf(rule, customer, now)


def window(days: int, now: datetime) -> tuple[datetime, datetime]:
    """The moments ``within_days`` accepts: from ``days`` days before ``now`` to ``now``."""
    return now - timedelta(days=days), now


def _evaluate_leaf(leaf: Leaf, customer: Mapping[str, object], now: datetime) -> bool:
    if FIELDS.get(leaf.field) is FieldType.MAILING:
        ids = customer.get(leaf.field) or ()
        assert isinstance(ids, set | frozenset | tuple | list)
        if leaf.op is Op.EXISTS:
            return bool(ids) is leaf.value
        wanted = leaf.value if isinstance(leaf.value, tuple) else (leaf.value,)
        found = any(v in ids for v in wanted)
        return not found if leaf.op is Op.NE else found
    if leaf.op is Op.WITHIN_DAYS:
        actual = customer.get(leaf.field)
        assert isinstance(leaf.value, int) and (actual is None or isinstance(actual, datetime))
        start, end = window(leaf.value, now)
        return actual is not None and start <= actual <= end
    if isinstance(leaf.value, DaysAgo):
        leaf = Leaf(field=leaf.field, op=leaf.op, value=leaf.value.at(now))
    key = attribute_key(leaf.field)
    if key is None:
        actual = customer.get(leaf.field)
    else:
        attributes = customer.get("attributes") or {}
        assert isinstance(attributes, Mapping)
        actual = attributes.get(key)
        if leaf.op is not Op.EXISTS:
            actual = _attribute_as(actual, leaf.value)
    if leaf.op is Op.EXISTS:
        return (actual is not None) is leaf.value
    if actual is None:
        return leaf.op is Op.NE
    if isinstance(actual, Decimal | int) and not isinstance(actual, bool):
        actual = float(actual)
    if leaf.op is Op.CONTAINS:
        assert isinstance(actual, str) and isinstance(leaf.value, str)
        return leaf.value.lower() in actual.lower()
    if leaf.op is Op.IN:
        assert isinstance(leaf.value, tuple)
        return any(_compare(actual, Op.EQ, v) for v in leaf.value)
    return _compare(actual, leaf.op, leaf.value)


def _compare(actual: object, op: Op, value: object) -> bool:
    """``actual op value`` for two values of one type (numbers as floats)."""
    right: _t.Any = float(value) if _is_number(value) else value  # type: ignore[arg-type]
    left: _t.Any = actual
    if op is Op.EQ:
        return bool(left == right)
    if op is Op.NE:
        return bool(left != right)
    if op is Op.LT:
        return bool(left < right)
    if op is Op.LTE:
        return bool(left <= right)
    if op is Op.GT:
        return bool(left > right)
    return bool(left >= right)


def _attribute_as(actual: object, value: object) -> object:
    """The attribute seen as the type of the rule's value, or ``None`` (missing)."""
    sample = value[0] if isinstance(value, tuple) else value
    if isinstance(sample, bool):
        if isinstance(actual, str):
            return flag_of(actual)
        return actual if isinstance(actual, bool) else None
    if isinstance(sample, str):
        return actual if isinstance(actual, str) else None
    if isinstance(actual, bool):
        return None
    if isinstance(actual, int | float):
        return float(actual)
    if isinstance(actual, str) and NUMERIC_TEXT.fullmatch(actual):
        return float(actual)
    return None
