"""Any input gives a result or a clear error, never a crash (hypothesis).

Pure parts, no I/O: segment rules as any JSON, customer and order CSV files as
any bytes, templates as any mix of text and Jinja (rendered in a child under
an address-space limit), and MIME assembly of whatever a template renders.
The database side (compiling any rule, importing any CSV without a partial
write) is ``tests/integration/test_hostile_properties.py``.
"""

from __future__ import annotations

import email
import email.policy
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.limits import run_python
from tidings.domain.customers import CustomerInput, parse_customers_csv
from tidings.domain.engagement import parse_orders_csv
from tidings.domain.segments import Rule, parse_rules
from tidings.domain.templates import compile_email
from tidings.errors import InvalidInput
from tidings.transports.mime import MessageFactory

FAST = settings(max_examples=200, deadline=None, suppress_health_check=list(HealthCheck))

# -------------------------------------------------------------------- segment rules

_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=30),
    st.sampled_from(["2024-05-01", "2024-05-01T09:00:00+02:00", "0001-01-01T00:00:00+14:00",
                     "9999-12-31T23:59:59-14:00", "2024-13-45", "\x00", "\ud800"]),
)
_fields = st.sampled_from(["email", "first_name", "orders_count", "orders_total", "created_at",
                           "last_order_at", "attributes.city", "attributes.n", "attributes.bad key",
                           "nope", ""])
_ops = st.sampled_from(["eq", "ne", "lt", "lte", "gt", "gte", "in", "contains", "exists", "like", ""])
_leaves = st.one_of(
    st.fixed_dictionaries({"field": _fields, "op": _ops,
                           "value": st.one_of(_scalars, st.lists(_scalars, max_size=4))}),
    st.dictionaries(st.sampled_from(["field", "op", "value", "x"]), _scalars, max_size=4),
    _scalars,
)
RULES = st.recursive(
    _leaves,
    lambda inner: st.one_of(
        st.fixed_dictionaries({"all": st.lists(inner, max_size=4)}),
        st.fixed_dictionaries({"any": st.lists(inner, max_size=4)}),
        st.fixed_dictionaries({"not": inner}),
        st.dictionaries(st.sampled_from(["all", "any", "not", "field"]), inner, max_size=2),
    ),
    max_leaves=20,
)


@FAST
@given(rules=RULES)
def test_any_json_is_a_rule_tree_or_invalid_input_naming_the_rule(rules: Any) -> None:
    try:
        parsed = parse_rules(rules)
    except InvalidInput as exc:
        assert exc.field is not None and exc.field.startswith("rules")
        assert exc.message.startswith(exc.field)
        return
    assert isinstance(parsed, Rule.__args__)  # type: ignore[attr-defined]


def test_rules_nested_past_the_limit_are_refused_without_a_recursion_error() -> None:
    rules: Any = {"field": "email", "op": "eq", "value": "a"}
    for _ in range(5000):
        rules = {"not": rules}

    try:
        parse_rules(rules)
    except InvalidInput as exc:
        assert "nested more than 20 levels" in exc.message
    else:
        raise AssertionError("accepted")


# -------------------------------------------------------------------- CSV files

_cells = st.one_of(
    st.sampled_from(["email", "external_id", "first_name", "phone", "city", "Email", "total",
                     "customer_email", "created_at", "utm_source", "a@example.org", "b@example.org",
                     "+44 20 7946 0958", "2024-05-01T10:00:00Z", "12.50", "1e999", "9" * 40, "",
                     '"', '""', "\x00", "\r", "\n", ";", ",", "\t", "é", "\ufeff"]),
    st.text(max_size=12),
)
CSV_TEXT = st.lists(st.lists(_cells, max_size=6).map(",".join), max_size=12).map("\n".join)
CSV_BYTES = st.one_of(
    CSV_TEXT.map(lambda text: text.encode("utf-8")),
    CSV_TEXT.map(lambda text: text.encode("utf-16")),
    CSV_TEXT.map(lambda text: text.encode("cp1252", "replace")),
    st.binary(max_size=300),
)


@FAST
@given(data=CSV_BYTES)
def test_any_customer_file_is_parsed_into_lines_or_refused_naming_what(data: bytes) -> None:
    try:
        result = parse_customers_csv(data)
    except InvalidInput as exc:
        assert exc.field in ("file", "encoding", "delimiter")
        return
    assert all(isinstance(item, CustomerInput) for _, item in result.rows)
    lines = [line for line, _ in result.rows] + [line for line, _ in result.errors]
    assert len(lines) == len(set(lines)) and all(line >= 2 for line in lines)


@FAST
@given(data=CSV_BYTES)
def test_any_order_file_is_parsed_into_lines_or_refused_naming_what(data: bytes) -> None:
    try:
        result = parse_orders_csv(data)
    except InvalidInput as exc:
        assert exc.field in ("file", "encoding", "delimiter")
        return
    assert all(line >= 1 for line, _ in result.orders + result.errors)


# -------------------------------------------------------------------- templates, in a limited child

RENDER_CHILD = r"""
import json, sys
from hypothesis import HealthCheck, given, settings, strategies as st
from tidings.domain.templates import compile_email
from tidings.errors import InvalidInput

FRAGMENTS = json.load(sys.stdin)
context = {"customer": {"first_name": "Ann", "attributes": {"n": 3, "l": [1, 2]}},
           "unsubscribe_url": "https://t.example/u/x", "mailing": {"id": 1, "name": "m"}}
seen = {"rendered": 0, "refused": 0}

@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(parts=st.lists(st.sampled_from(FRAGMENTS), max_size=12))
def render_anything(parts):
    try:
        compile_email(subject="Hi", html="".join(parts), text=None).render(context)
        seen["rendered"] += 1
    except InvalidInput:
        seen["refused"] += 1

render_anything()
print(json.dumps(seen))
"""

HOSTILE_FRAGMENTS = [
    "{% for i in range(100000) %}", "{% for j in range(customer.attributes.n * 1000) %}", "{% endfor %}",
    "{{ 'x' * 100000 }}", "{{ 'ab'|center(999999) }}", "{{ 'a\nb'|indent(500000) }}",
    "{{ '%0999999d'|format(1) }}", "{% set ns = namespace(s='xy') %}", "{% set ns.s = ns.s ~ ns.s %}",
    "{{ ns.s|length }}", "{{ customer.first_name|replace('n', 'nn' * 50000) }}", "{{ 9 ** 99 ** 2 }}",
    "{{ range(10)|join('-' * 100000) }}", "{% if customer.attributes.n > 2 %}", "{% endif %}",
    "{{ lipsum() }}", "{{ customer.attributes.l * 50000 }}", "<p>", "</p>", "{{ '\\ud800\\x00' }}",
    "{% macro m(k) %}{{ m(k) }}{% endmacro %}", "{{ m(1) }}", "{{ 1 / 0 }}", "text",
]


def test_any_mix_of_hostile_fragments_renders_or_is_refused_inside_a_memory_limit() -> None:
    seen = run_python(RENDER_CHILD, HOSTILE_FRAGMENTS, timeout=300)

    assert seen["rendered"] + seen["refused"] >= 300
    assert seen["refused"] > 0 and seen["rendered"] > 0


# -------------------------------------------------------------------- MIME assembly

_template_text = st.text(max_size=60).map(lambda t: t.replace("{", "(").replace("}", ")"))
_literals = st.one_of(st.text(max_size=8).map(lambda t: "{{ " + repr(t) + " }}"),
                      st.sampled_from(["{{ '\\ud800' }}", "{{ '\\udfff x' }}", "{{ '\\x00' }}",
                                       "{{ '\\r\\nBcc: x@evil.example' }}"]))


@FAST
@given(subject=st.lists(st.one_of(_template_text, _literals), max_size=4).map("".join),
       body=st.lists(st.one_of(_template_text, _literals), max_size=6).map("".join),
       name=st.text(st.characters(exclude_categories=["Cs"]), max_size=40))
def test_whatever_a_template_renders_assembles_into_a_message_that_parses_back(
        subject: str, body: str, name: str) -> None:
    try:
        rendered = compile_email(subject=subject or "S", html=f"<p>{body}</p>", text=None).render(
            {"customer": {}})
    except InvalidInput:
        return
    factory = MessageFactory(from_email="news@shop.example", from_name=name, reply_to=None,
                             mailing_id=1)

    raw = factory.build(message_id_header="<m.1@shop.example>", to="ann@example.org",
                        subject=rendered.subject, html=rendered.html, text=rendered.text,
                        list_unsubscribe="https://t.example/u/x")

    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert message["Subject"] is not None and message.get_body(("plain",)) is not None
    assert "\x00" not in raw.decode("ascii", "replace")
