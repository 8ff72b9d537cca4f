"""Segment rules as SQL over ``customers``, on SQLite and PostgreSQL alike.

:func:`compile_rules` turns a parsed rule (:mod:`tidings.domain.segments`)
into a boolean SQLAlchemy expression with every value a bound parameter. It
means exactly what :func:`tidings.domain.segments.evaluate` means; the
integration tests check that on both databases.

How NULL is kept out of the logic: every leaf is two-valued. A comparison is
``x IS NOT NULL AND x op v`` and ``ne`` is ``x IS NULL OR x <> v``, so ``NOT``
never meets an unknown and a customer without a first name is ``ne "Ann"``.

How attributes are typed: by the rule's value (see the domain module). Four
small SQL constructs, compiled per dialect, read ``attributes -> KEY`` as

- text: the value if it is a JSON string, else NULL;
- number: a JSON number, or a JSON string spelling a decimal number, as a
  double; else NULL (so a stray ``"abc"`` never breaks a cast);
- flag: ``'true'``/``'false'`` if it is a JSON boolean, or a JSON string
  that is ``true``/``false`` in any case (ASCII letters only fold on either
  database, as in ``domain.attributes.flag_of``); else NULL;
- raw: anything but a missing key or JSON null (for ``exists``).

String ordering (``lt`` ... ``gte``) is by code point on both databases
(``COLLATE "C"`` on PostgreSQL; SQLite's default is binary).

Relative dates are resolved against the ``now`` the caller gives (the
service's clock) into bound moments, so the database's own clock never
decides. The fields computed from messages (``last_opened_at``,
``received_mailing``, ...) are ``EXISTS`` tests on the customer's messages
(``ix_messages_customer``, and ``(mailing_id, customer_id)`` for one mailing),
two-valued like every other leaf.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any as _Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement

from tidings.domain.customers import CustomerStatus
from tidings.domain.segments import (
    FIELDS,
    ORDERING,
    All,
    Any,
    DaysAgo,
    Everyone,
    FieldType,
    Leaf,
    Not,
    Op,
    Rule,
    Value,
    attribute_key,
    window,
)
from tidings.store.sms import is_e164
from tidings.store.tables import UtcDateTime, customers, mailings, messages, segments

#: Rule field -> column. Adding a field is one line here and one in ``domain.segments.FIELDS``.
COLUMNS: dict[str, sa.Column[_Any]] = {
    "email": customers.c.email,
    "first_name": customers.c.first_name,
    "last_name": customers.c.last_name,
    "phone": customers.c.phone,
    "external_id": customers.c.external_id,
    "email_status": customers.c.email_status,
    "sms_status": customers.c.sms_status,
    "created_at": customers.c.created_at,
    "last_order_at": customers.c.last_order_at,
    "orders_count": customers.c.orders_count,
    "orders_total": customers.c.orders_total,
    # Computed from the customer's messages (see _derived_time and _mailing_set).
    "last_opened_at": messages.c.opened_at,
    "last_clicked_at": messages.c.clicked_at,
    "received_mailing": messages.c.mailing_id,
    "opened_mailing": messages.c.mailing_id,
    "clicked_mailing": messages.c.mailing_id,
}
#: What a message must show for each mailing-set field.
_MAILING_SETS: dict[str, _Any] = {
    "received_mailing": lambda: sa.and_(messages.c.status == "sent", messages.c.bounce.is_(None)),
    "opened_mailing": lambda: messages.c.opened_at.is_not(None),
    "clicked_mailing": lambda: messages.c.clicked_at.is_not(None),
}

# The same pattern as domain.attributes.NUMERIC_TEXT, anchored; \Z (not $) so that
# Python's re, which SQLite calls, does not accept a trailing newline.
_NUMERIC_SQL = r"^-?[0-9]+(\.[0-9]+)?\Z"
_FLAG_TEXT = ("true", "false")


def compile_rules(rule: Rule, *, now: datetime | None = None) -> ColumnElement[bool]:
    """A WHERE clause over ``customers`` selecting the customers that satisfy
    ``rule`` at ``now`` (default: the current time), which relative dates count from."""
    return _compile(rule, now or datetime.now(UTC))


def _compile(rule: Rule, now: datetime) -> ColumnElement[bool]:
    if isinstance(rule, Everyone):
        return sa.true()
    if isinstance(rule, All):
        return sa.and_(*(_compile(r, now) for r in rule.rules))
    if isinstance(rule, Any):
        return sa.or_(*(_compile(r, now) for r in rule.rules))
    if isinstance(rule, Not):
        return sa.not_(_compile(rule.rule, now))
    if FIELDS.get(rule.field) is FieldType.MAILING:
        return _mailing_set(rule)
    if rule.op is Op.WITHIN_DAYS:
        assert isinstance(rule.value, int)
        start, end = window(rule.value, now)
        if rule.field in _DERIVED_TIMES:
            return _derived_time(rule.field, Op.WITHIN_DAYS, (start, end))
        column = COLUMNS[rule.field]
        return sa.and_(column.is_not(None), column >= _bind(start), column <= _bind(end))
    if isinstance(rule.value, DaysAgo):
        rule = Leaf(field=rule.field, op=rule.op, value=rule.value.at(now))
    if rule.field in _DERIVED_TIMES:
        return _derived_time(rule.field, rule.op, rule.value)
    return _leaf(rule)


def count_matching(conn: sa.Connection, rule: Rule, *, now: datetime | None = None) -> int:
    """How many customers satisfy ``rule`` at ``now``."""
    stmt = sa.select(sa.func.count()).select_from(customers).where(compile_rules(rule, now=now))
    return int(conn.execute(stmt).scalar_one())


_DERIVED_TIMES = ("last_opened_at", "last_clicked_at")


def _messages_where(*conditions: ColumnElement[bool]) -> ColumnElement[bool]:
    """Whether the customer has a message meeting every condition."""
    return sa.exists().where(messages.c.customer_id == customers.c.id, *conditions)


def _derived_time(field: str, op: Op, value: _Any) -> ColumnElement[bool]:
    """A leaf on the latest of the customer's messages' times (``max``), as
    ``EXISTS`` tests: the latest is at least ``v`` when some time is, below
    ``v`` when some time exists and none is at least ``v``, and so on."""
    column = COLUMNS[field]
    some = _messages_where(column.is_not(None))
    if op is Op.EXISTS:
        return some if value else ~some
    if op is Op.WITHIN_DAYS:
        start, end = value
        return sa.and_(_messages_where(column >= _bind(start), column <= _bind(end)),
                       ~_messages_where(column > _bind(end)))
    if op is Op.IN:
        return sa.or_(*(_derived_time(field, Op.EQ, v) for v in value))
    bound = _bind(value)
    if op is Op.EQ:
        return sa.and_(_messages_where(column == bound), ~_messages_where(column > bound))
    if op is Op.NE:
        return ~_derived_time(field, Op.EQ, value)
    if op is Op.GT:
        return _messages_where(column > bound)
    if op is Op.GTE:
        return _messages_where(column >= bound)
    if op is Op.LT:
        return sa.and_(some, ~_messages_where(column >= bound))
    assert op is Op.LTE
    return sa.and_(some, ~_messages_where(column > bound))


def _mailing_set(leaf: Leaf) -> ColumnElement[bool]:
    """``received_mailing`` and its kind: is one of the mailings in the customer's set."""
    shown = _MAILING_SETS[leaf.field]()
    if leaf.op is Op.EXISTS:
        some = _messages_where(shown)
        return some if leaf.value else ~some
    ids = list(leaf.value) if isinstance(leaf.value, tuple) else [leaf.value]
    found = _messages_where(messages.c.mailing_id.in_([_bind(i) for i in ids]), shown)
    return ~found if leaf.op is Op.NE else found


def count_reachable(conn: sa.Connection, rule: Rule, *, now: datetime | None = None
                    ) -> dict[str, int]:
    """``{"count": matching, "email": ..., "sms": ...}``: of the customers that
    satisfy ``rule``, all of them, those with an email address and
    ``email_status`` subscribed, and the phones (each once) in E.164 form of those
    with ``sms_status`` subscribed."""
    subscribed = CustomerStatus.SUBSCRIBED.value
    email = sa.and_(customers.c.email.is_not(None), customers.c.email_status == subscribed)
    sms = sa.and_(customers.c.phone.is_not(None), is_e164(customers.c.phone),
                  customers.c.sms_status == subscribed)
    stmt = sa.select(
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(sa.case((email, 1), else_=0)), 0),
        sa.func.count(sa.distinct(sa.case((sms, customers.c.phone), else_=sa.null()))),
    ).where(compile_rules(rule, now=now))
    count, by_email, by_sms = conn.execute(stmt).one()
    return {"count": int(count), "email": int(by_email), "sms": int(by_sms)}


def _leaf(leaf: Leaf) -> ColumnElement[bool]:
    key = attribute_key(leaf.field)
    sample = leaf.value[0] if isinstance(leaf.value, tuple) else leaf.value
    target: ColumnElement[_Any]
    if leaf.op is Op.EXISTS:
        target = _AttributeRaw(key) if key is not None else COLUMNS[leaf.field]
        return target.is_not(None) if leaf.value else target.is_(None)
    if key is None:
        target = COLUMNS[leaf.field]
        is_text = FIELDS[leaf.field] is FieldType.STRING
    elif isinstance(sample, bool):
        target, is_text = _AttributeFlag(key), True
    elif isinstance(sample, str):
        target, is_text = _AttributeText(key), True
    else:
        target, is_text = _AttributeNumber(key), False

    op = leaf.op
    if op is Op.IN:
        assert isinstance(leaf.value, tuple)
        return sa.and_(target.is_not(None), target.in_([_bind(v) for v in leaf.value]))
    assert not isinstance(leaf.value, tuple)
    if op is Op.CONTAINS:
        return sa.and_(target.is_not(None), target.icontains(leaf.value, autoescape=True))
    value = _bind(leaf.value)
    if op is Op.EQ:
        return sa.and_(target.is_not(None), target == value)
    if op is Op.NE:
        return sa.or_(target.is_(None), target != value)
    assert op in ORDERING
    ordered = _codepoint_order(target) if is_text else target
    compare = {
        Op.LT: ordered < value,
        Op.LTE: ordered <= value,
        Op.GT: ordered > value,
        Op.GTE: ordered >= value,
    }[op]
    return sa.and_(target.is_not(None), compare)


def _bind(value: Value) -> ColumnElement[_Any]:
    """``value`` as a bound parameter with a type of its own, never the column's:
    a number bound as ``NUMERIC(14, 2)`` would be rounded, a string as
    ``VARCHAR(255)`` truncated. Booleans compare with an attribute flag's text."""
    if isinstance(value, bool):
        return sa.literal("true" if value else "false", sa.String())
    if isinstance(value, str):
        return sa.literal(value, sa.String())
    if isinstance(value, int):
        return sa.literal(value, sa.BigInteger())
    if isinstance(value, float):
        return sa.literal(value, sa.Float())
    assert isinstance(value, datetime)
    return sa.literal(value, UtcDateTime())


# --- dialect-specific pieces ------------------------------------------------------------


class _Attribute(FunctionElement[_Any]):
    """``customers.attributes`` at one key, read one way (see the module docstring).
    The key is a bound parameter, so compiled statements are safely cached."""

    inherit_cache = True

    def __init__(self, key: str) -> None:
        super().__init__(customers.c.attributes, sa.literal(key, sa.String()))


class _AttributeText(_Attribute):
    type = sa.String()
    inherit_cache = True


class _AttributeNumber(_Attribute):
    type = sa.Float()
    inherit_cache = True


class _AttributeFlag(_Attribute):
    type = sa.String()
    inherit_cache = True


class _AttributeRaw(_Attribute):
    type = sa.String()
    inherit_cache = True


class _CodepointOrder(FunctionElement[str]):
    """A string expression that orders by code point."""

    type = sa.String()
    inherit_cache = True


def _codepoint_order(expr: ColumnElement[_Any]) -> ColumnElement[_Any]:
    return _CodepointOrder(expr)


@compiles(_Attribute)
def _unsupported(element: _Attribute, compiler: SQLCompiler, **kw: _Any) -> str:
    raise sa.exc.CompileError(
        f"Segment rules on attributes need SQLite or PostgreSQL, not {compiler.dialect.name}."
    )


@compiles(_Attribute, "postgresql")
def _attribute_postgresql(element: _Attribute, compiler: SQLCompiler, **kw: _Any) -> str:
    attributes, key = element.clauses.clauses
    node = attributes.op("->", return_type=postgresql.JSONB)(key)
    text = attributes.op("->>", return_type=sa.Text)(key)
    kind = sa.func.jsonb_typeof(node)
    expr: ColumnElement[_Any]
    if isinstance(element, _AttributeText):
        expr = sa.case((kind == "string", text))
    elif isinstance(element, _AttributeNumber):
        spelled = sa.and_(kind == "string", text.regexp_match(_NUMERIC_SQL))
        numeric = sa.or_(kind == "number", spelled)
        expr = sa.case((numeric, sa.cast(text, sa.Float)))
    elif isinstance(element, _AttributeFlag):
        folded = sa.func.lower(text)
        spelled = sa.and_(kind == "string", folded.in_(_FLAG_TEXT))
        expr = sa.case((kind == "boolean", text), (spelled, folded))
    else:
        expr = text  # ->> gives NULL for a missing key and for JSON null
    return compiler.process(expr, **kw)


@compiles(_Attribute, "sqlite")
def _attribute_sqlite(element: _Attribute, compiler: SQLCompiler, **kw: _Any) -> str:
    attributes, key = element.clauses.clauses
    path = sa.literal('$."', sa.String()) + key + sa.literal('"', sa.String())
    kind = sa.func.json_type(attributes, path)
    raw = sa.func.json_extract(attributes, path)
    expr: ColumnElement[_Any]
    if isinstance(element, _AttributeText):
        expr = sa.case((kind == "text", raw))
    elif isinstance(element, _AttributeNumber):
        expr = sa.case(
            (sa.or_(kind == "integer", kind == "real"), raw),
            (sa.and_(kind == "text", raw.regexp_match(_NUMERIC_SQL)), sa.cast(raw, sa.Float)),
        )
    elif isinstance(element, _AttributeFlag):
        folded = sa.func.lower(raw)  # SQLite folds ASCII letters only
        expr = sa.case((sa.or_(kind == "true", kind == "false"), kind),
                       (sa.and_(kind == "text", folded.in_(_FLAG_TEXT)), folded))
    else:
        expr = raw  # json_extract gives NULL for a missing key and for JSON null
    return compiler.process(expr, **kw)


@compiles(_CodepointOrder)
def _codepoint_default(element: _CodepointOrder, compiler: SQLCompiler, **kw: _Any) -> str:
    (expr,) = element.clauses.clauses
    return compiler.process(expr, **kw)


@compiles(_CodepointOrder, "postgresql")
def _codepoint_postgresql(element: _CodepointOrder, compiler: SQLCompiler, **kw: _Any) -> str:
    (expr,) = element.clauses.clauses
    return compiler.process(sa.collate(expr, "C"), **kw)


# -- segment rows ---------------------------------------------------------------------


def insert(conn: sa.Connection, *, name: str, rules: _Any, now: datetime) -> int:
    stmt = segments.insert().values(name=name, rules=rules, created_at=now, updated_at=now)
    segment_id: int = conn.execute(stmt.returning(segments.c.id)).scalar_one()
    return segment_id


def update(conn: sa.Connection, segment_id: int, values: dict[str, _Any], *, now: datetime) -> None:
    conn.execute(segments.update().where(segments.c.id == segment_id).values(**values, updated_at=now))


def get(conn: sa.Connection, segment_id: int) -> sa.Row[_Any] | None:
    return conn.execute(sa.select(segments).where(segments.c.id == segment_id)).first()


def list_rows(conn: sa.Connection) -> list[sa.Row[_Any]]:
    return list(conn.execute(sa.select(segments).order_by(segments.c.id)))


def delete(conn: sa.Connection, segment_id: int) -> None:
    """Delete the segment; the mailings that named it (drafts, sent ones) no
    longer do. The caller has checked that none is scheduled or sending."""
    conn.execute(mailings.update().where(mailings.c.segment_id == segment_id).values(segment_id=None))
    conn.execute(segments.delete().where(segments.c.id == segment_id))


def mailings_using(conn: sa.Connection, segment_id: int, statuses: tuple[str, ...]
                   ) -> list[tuple[int, str, str]]:
    """``(id, name, status)`` of the mailings in ``statuses`` that use the segment."""
    rows = conn.execute(
        sa.select(mailings.c.id, mailings.c.name, mailings.c.status)
        .where(mailings.c.segment_id == segment_id, mailings.c.status.in_(statuses))
        .order_by(mailings.c.id)
    )
    return [(r.id, r.name, r.status) for r in rows]


def mailings_sent(conn: sa.Connection, *, limit: int) -> list[tuple[int, str, str]]:
    """``(id, name, channel)`` of the mailings that have messages (sent or being
    sent), the newest first: what "received the mailing" may name."""
    rows = conn.execute(
        sa.select(mailings.c.id, mailings.c.name, mailings.c.channel)
        .where(mailings.c.started_at.is_not(None))
        .order_by(mailings.c.started_at.desc(), mailings.c.id.desc()).limit(limit)
    )
    return [(r.id, r.name, r.channel) for r in rows]


def mailing_names(conn: sa.Connection, ids: list[int]) -> dict[int, str]:
    if not ids:
        return {}
    rows = conn.execute(sa.select(mailings.c.id, mailings.c.name).where(mailings.c.id.in_(ids)))
    return {r.id: r.name for r in rows}
