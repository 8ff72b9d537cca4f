"""Compiled segment rules select exactly what the reference meaning says, on
SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tidings.domain.segments import evaluate, parse_rules
from tidings.store.segments import compile_rules, count_matching, count_reachable
from tidings.store.tables import customers, mailings, messages

NOW = datetime(2024, 6, 1, tzinfo=UTC)


def row(external_id: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {
        "external_id": external_id,
        "email": None,
        "phone": None,
        "first_name": None,
        "last_name": None,
        "attributes": {},
        "email_status": "subscribed",
        "sms_status": "subscribed",
        "orders_count": 0,
        "orders_total": Decimal("0"),
        "last_order_at": None,
        "created_at": NOW,
        "updated_at": NOW,
    }
    return base | fields


PEOPLE = [
    row(
        "ann",
        email="ann@example.com",
        phone="+442079460958",
        first_name="Ann",
        last_name="Lee",
        orders_count=3,
        orders_total=Decimal("120.50"),
        created_at=datetime(2024, 1, 10, tzinfo=UTC),
        last_order_at=datetime(2024, 3, 1, 12, tzinfo=UTC),
        attributes={"city": "Paris", "age": 34, "vip": True, "points": "120", "tags": ["a", "b"]},
    ),
    row(
        "bob",
        email="bob@example.org",
        first_name="Bob",
        email_status="unsubscribed",
        created_at=datetime(2024, 2, 15, tzinfo=UTC),
        attributes={"city": "berlin", "age": "27", "vip": False},
    ),
    row(
        "cy",
        phone="+33612345678",
        orders_count=1,
        orders_total=Decimal("9.99"),
        # 2024-01-01 00:30 UTC
        created_at=datetime(2023, 12, 31, 23, 30, tzinfo=timezone(timedelta(hours=-1))),
        attributes={"city": None, "age": "n/a", "vip": "TRUE"},  # as an API client may send it
    ),
    row(
        "dee",
        email="dee@example.com",
        phone="+15550100199",
        first_name="Dee",
        email_status="bounced",
        sms_status="unsubscribed",
        created_at=datetime(2023, 6, 1, tzinfo=UTC),
        attributes={"vip": "yes", "since": "2023-06-01"},
    ),
]
EVERYONE = {"ann", "bob", "cy", "dee"}
HOSTILE = "x' OR 1=1 --"


@pytest.fixture
def conn(engine: sa.Engine) -> Iterator[sa.Connection]:
    with engine.begin() as connection:
        connection.execute(customers.insert(), PEOPLE)
        yield connection


def matching(conn: sa.Connection, rules: object) -> set[str]:
    where = compile_rules(parse_rules(rules))
    return set(conn.scalars(sa.select(customers.c.external_id).where(where)))


def leaf(field: str, op: str, value: object) -> dict[str, object]:
    return {"field": field, "op": op, "value": value}


CASES = [
    ({}, EVERYONE),
    (leaf("first_name", "eq", "Ann"), {"ann"}),
    (leaf("first_name", "ne", "Ann"), {"bob", "cy", "dee"}),
    (leaf("first_name", "lt", "B"), {"ann"}),
    (leaf("first_name", "gte", "Bob"), {"bob", "dee"}),
    (leaf("first_name", "gt", "D"), {"dee"}),
    (leaf("first_name", "lte", "Ann"), {"ann"}),
    (leaf("first_name", "in", ["Ann", "Dee", "Zed"]), {"ann", "dee"}),
    (leaf("first_name", "exists", False), {"cy"}),
    (leaf("email", "eq", "ANN@example.com"), {"ann"}),
    (leaf("email", "contains", "EXAMPLE.COM"), {"ann", "dee"}),
    (leaf("email", "exists", True), {"ann", "bob", "dee"}),
    (leaf("email_status", "eq", "subscribed"), {"ann", "cy"}),
    (leaf("orders_count", "gt", 0), {"ann", "cy"}),
    (leaf("orders_count", "in", [0, 1]), {"bob", "cy", "dee"}),
    (leaf("orders_total", "gte", 120.5), {"ann"}),
    (leaf("orders_total", "lte", 9.99), {"bob", "cy", "dee"}),
    (leaf("orders_total", "eq", 9.99), {"cy"}),
    (leaf("orders_total", "ne", 0), {"ann", "cy"}),
    (leaf("created_at", "lt", "2024-01-01"), {"dee"}),
    (leaf("created_at", "gte", "2024-01-01T01:30:00+01:00"), {"ann", "bob", "cy"}),
    (leaf("created_at", "eq", "2024-01-01T00:30:00Z"), {"cy"}),
    (leaf("last_order_at", "exists", True), {"ann"}),
    (leaf("last_order_at", "lt", "2030-01-01"), {"ann"}),
    ({"not": leaf("last_order_at", "lt", "2030-01-01")}, {"bob", "cy", "dee"}),
    (leaf("attributes.city", "eq", "Paris"), {"ann"}),
    (leaf("attributes.city", "ne", "Paris"), {"bob", "cy", "dee"}),
    (leaf("attributes.city", "contains", "ER"), {"bob"}),
    (leaf("attributes.city", "in", ["Paris", "berlin"]), {"ann", "bob"}),
    (leaf("attributes.city", "lt", "Z"), {"ann"}),
    (leaf("attributes.city", "exists", True), {"ann", "bob"}),
    (leaf("attributes.city", "exists", False), {"cy", "dee"}),
    (leaf("attributes.age", "gt", 30), {"ann"}),
    (leaf("attributes.age", "gte", 27), {"ann", "bob"}),
    (leaf("attributes.age", "lt", 30.5), {"bob"}),
    (leaf("attributes.age", "eq", "27"), {"bob"}),
    (leaf("attributes.age", "eq", "34"), set()),
    (leaf("attributes.age", "eq", 34), {"ann"}),
    (leaf("attributes.age", "ne", 34), {"bob", "cy", "dee"}),
    (leaf("attributes.age", "in", [27, 34]), {"ann", "bob"}),
    (leaf("attributes.points", "lt", 200), {"ann"}),
    (leaf("attributes.vip", "eq", True), {"ann", "cy"}),
    (leaf("attributes.vip", "eq", False), {"bob"}),
    (leaf("attributes.vip", "ne", True), {"bob", "dee"}),
    (leaf("attributes.vip", "eq", "yes"), {"dee"}),
    (leaf("attributes.vip", "eq", "TRUE"), {"cy"}),
    (leaf("attributes.since", "lt", "2024-01-01"), {"dee"}),
    (leaf("attributes.since", "gte", "2023-06-01"), {"dee"}),
    (leaf("attributes.tags", "exists", True), {"ann"}),
    (leaf("attributes.tags", "eq", "a"), set()),
    (
        {
            "any": [
                {"all": [leaf("attributes.city", "eq", "Paris"), leaf("attributes.age", "gt", 30)]},
                {"not": leaf("email", "exists", True)},
            ]
        },
        {"ann", "cy"},
    ),
    (
        {"not": {"any": [leaf("first_name", "eq", "Ann"), leaf("phone", "exists", False)]}},
        {"cy", "dee"},
    ),
]


@pytest.mark.parametrize(("rules", "expected"), CASES)
def test_a_rule_selects_the_customers_it_describes(conn, rules, expected):
    assert matching(conn, rules) == expected
    assert count_matching(conn, parse_rules(rules)) == len(expected)


RELATIVE = [
    # Ann's last order was on 2024-03-01 12:00, 91.5 days before NOW.
    (leaf("last_order_at", "within_days", 92), {"ann"}),
    (leaf("last_order_at", "within_days", 91), set()),
    ({"not": leaf("last_order_at", "within_days", 92)}, {"bob", "cy", "dee"}),
    (leaf("last_order_at", "gte", {"days_ago": 92}), {"ann"}),
    # Dee signed up on 2023-06-01, 366 days before NOW (2024 is a leap year).
    (leaf("created_at", "lt", {"days_ago": 365}), {"dee"}),
    (leaf("created_at", "lt", {"days_ago": 366}), set()),
    (leaf("created_at", "lte", {"days_ago": 366}), {"dee"}),
    (leaf("created_at", "gt", {"days_ago": 365}), {"ann", "bob", "cy"}),
]


@pytest.mark.parametrize(("rules", "expected"), RELATIVE)
def test_a_relative_date_counts_from_the_moment_given(conn, rules, expected):
    rule = parse_rules(rules)
    assert set(conn.scalars(sa.select(customers.c.external_id)
                            .where(compile_rules(rule, now=NOW)))) == expected
    assert {p["external_id"] for p in PEOPLE if evaluate(rule, p, now=NOW)} == expected


def test_a_relative_rule_selects_others_as_time_passes(conn):
    rule = parse_rules(leaf("last_order_at", "within_days", 92))
    assert count_matching(conn, rule, now=NOW) == 1
    assert count_matching(conn, rule, now=NOW + timedelta(days=1)) == 0
    assert count_matching(conn, rule, now=datetime(2024, 3, 1, 11, tzinfo=UTC)) == 0  # before it


def test_engagement_and_mailing_fields_read_the_customers_messages(conn):
    ids = dict(conn.execute(sa.select(customers.c.external_id, customers.c.id)).all())
    conn.execute(mailings.insert(), [
        {"id": i, "name": f"m{i}", "channel": "email", "conversion": {}, "status": "sent",
         "created_at": NOW, "updated_at": NOW} for i in (1, 2)])
    opened = NOW - timedelta(days=10)
    none = {"bounce": None, "opened_at": None, "clicked_at": None}
    conn.execute(messages.insert(), [none | m for m in [
        {"mailing_id": 1, "customer_id": ids["ann"], "status": "sent", "opened_at": opened,
         "clicked_at": opened},
        {"mailing_id": 2, "customer_id": ids["ann"], "status": "sent"},
        {"mailing_id": 1, "customer_id": ids["bob"], "status": "sent", "bounce": "hard"},
        {"mailing_id": 1, "customer_id": ids["dee"], "status": "skipped"},
        {"mailing_id": 2, "customer_id": ids["dee"], "status": "sent",
         "opened_at": NOW - timedelta(days=40)},
    ]])

    def select(rules: object) -> set[str]:
        where = compile_rules(parse_rules(rules), now=NOW)
        return set(conn.scalars(sa.select(customers.c.external_id).where(where)))

    assert select(leaf("received_mailing", "eq", 1)) == {"ann"}  # a bounce is not received
    assert select(leaf("received_mailing", "ne", 1)) == {"bob", "cy", "dee"}
    assert select(leaf("received_mailing", "in", [1, 2])) == {"ann", "dee"}
    assert select(leaf("opened_mailing", "eq", 2)) == {"dee"}
    assert select(leaf("clicked_mailing", "exists", True)) == {"ann"}
    assert select(leaf("last_opened_at", "within_days", 30)) == {"ann"}
    assert select(leaf("last_opened_at", "within_days", 60)) == {"ann", "dee"}
    assert select({"not": leaf("last_opened_at", "within_days", 30)}) == {"bob", "cy", "dee"}
    assert select(leaf("last_clicked_at", "lt", {"days_ago": 5})) == {"ann"}


@pytest.mark.parametrize(
    "rules",
    [
        leaf("first_name", "eq", HOSTILE),
        leaf("first_name", "in", [HOSTILE, "'; DROP TABLE customers; --"]),
        leaf("first_name", "contains", "%"),
        leaf("email", "contains", "_"),
        leaf("attributes.city", "eq", HOSTILE),
        leaf("attributes.city", "contains", HOSTILE),
        leaf("attributes.city", "gt", "\uffff"),
        leaf("attributes.x", "exists", True),
    ],
)
def test_a_hostile_value_matches_nothing_and_harms_nothing(conn, rules):
    assert matching(conn, rules) == set()
    assert count_matching(conn, parse_rules({})) == 4


def test_reachable_counts_need_an_address_and_a_subscription(conn):
    assert count_reachable(conn, parse_rules({})) == {"count": 4, "email": 1, "sms": 2}
    assert count_reachable(conn, parse_rules(leaf("first_name", "eq", "Zed"))) == {
        "count": 0,
        "email": 0,
        "sms": 0,
    }


# --- the compiled SQL agrees with the reference meaning ----------------------------

TEXT = st.text(alphabet="aAbB_%/' 0", max_size=3)
NUMBERS = st.one_of(
    st.integers(-3, 30), st.floats(-3, 30, allow_nan=False).map(lambda f: round(f, 2))
)
DATES = st.datetimes(min_value=datetime(2023, 1, 1), max_value=datetime(2025, 1, 1))
OFFSETS = st.sampled_from([UTC, timezone(timedelta(hours=2)), timezone(timedelta(hours=-5))])
ATTRIBUTE_VALUES = st.one_of(
    st.none(),
    st.booleans(),
    NUMBERS,
    st.text(alphabet="0123456789.-aB", max_size=4),
    st.sampled_from(["true", "TRUE", "False", "fAlSe", "yes", "tru", "\u017false", " true"]),
    st.lists(st.integers(0, 3), max_size=2),
)
KEYS = ["k1", "k2", "k3"]
MAILINGS = [1, 2, 3]
MOMENTS = st.one_of(st.none(), DATES.map(lambda d: d.replace(tzinfo=UTC)))
MESSAGES = st.dictionaries(
    st.sampled_from(MAILINGS),
    st.fixed_dictionaries({
        "status": st.sampled_from(["sent", "failed", "skipped"]),
        "bounce": st.sampled_from([None, None, "hard", "soft"]),
        "opened_at": MOMENTS,
        "clicked_at": MOMENTS,
    }),
    max_size=3,
)

CUSTOMERS = st.lists(
    st.fixed_dictionaries(
        {
            "email": st.one_of(st.none(), st.text(alphabet="ab_%", max_size=3)),
            "first_name": st.one_of(st.none(), TEXT),
            "last_name": st.one_of(st.none(), TEXT),
            "email_status": st.sampled_from(["subscribed", "unsubscribed", "bounced"]),
            "orders_count": st.integers(0, 5),
            "orders_total": st.decimals(0, 40, places=2),
            "created_at": DATES.map(lambda d: d.replace(tzinfo=UTC)),
            "last_order_at": st.one_of(st.none(), DATES.map(lambda d: d.replace(tzinfo=UTC))),
            "attributes": st.dictionaries(st.sampled_from(KEYS), ATTRIBUTE_VALUES, max_size=3),
            "messages": MESSAGES,
        }
    ),
    max_size=8,
)


def _leaves() -> st.SearchStrategy[dict]:
    def comparison(fields, values, ops):
        return st.builds(leaf, st.sampled_from(fields), st.sampled_from(ops), values)

    strings = ["first_name", "last_name", "email_status"]
    plain = ["eq", "ne", "lt", "lte", "gt", "gte"]
    attributes = [f"attributes.{k}" for k in KEYS]
    instants = st.builds(lambda d, tz: d.replace(tzinfo=tz).isoformat(), DATES, OFFSETS)
    return st.one_of(
        comparison(strings, TEXT, [*plain, "contains"]),
        comparison(strings, st.lists(TEXT, min_size=1, max_size=3), ["in"]),
        comparison(["orders_count", "orders_total"], NUMBERS, plain),
        comparison(["orders_total"], st.lists(NUMBERS, min_size=1, max_size=3), ["in"]),
        comparison(["created_at", "last_order_at"], instants, plain),
        comparison(["last_order_at"], DATES.map(lambda d: d.date().isoformat()), ["lt", "gte"]),
        comparison(attributes, st.one_of(TEXT, NUMBERS), plain),
        comparison(attributes, TEXT, ["contains"]),
        comparison(attributes, st.booleans(), ["eq", "ne"]),
        comparison(attributes, st.lists(NUMBERS, min_size=1, max_size=3), ["in"]),
        comparison(attributes, st.lists(TEXT, min_size=1, max_size=3), ["in"]),
        comparison(["email", "last_name", "last_order_at", *attributes], st.booleans(), ["exists"]),
        # relative dates, counted from the test's NOW
        comparison(TIMES, DAYS.map(lambda n: {"days_ago": n}), ["lt", "lte", "gt", "gte"]),
        comparison(TIMES, DAYS, ["within_days"]),
        # the times and sets computed from the customer's messages
        comparison(["last_opened_at", "last_clicked_at"], instants, plain),
        comparison(["last_opened_at", "last_clicked_at"], st.lists(instants, min_size=1,
                                                                   max_size=2), ["in"]),
        comparison(["last_opened_at", "last_clicked_at"], st.booleans(), ["exists"]),
        comparison(SETS, st.sampled_from(MAILINGS), ["eq", "ne"]),
        comparison(SETS, st.lists(st.sampled_from(MAILINGS), min_size=1, max_size=2), ["in"]),
        comparison(SETS, st.booleans(), ["exists"]),
    )


TIMES = ["created_at", "last_order_at", "last_opened_at", "last_clicked_at"]
SETS = ["received_mailing", "opened_mailing", "clicked_mailing"]
DAYS = st.integers(0, 800)


RULES = st.recursive(
    st.one_of(st.just({}), _leaves()),
    lambda children: st.one_of(
        st.builds(lambda rs: {"all": rs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda rs: {"any": rs}, st.lists(children, min_size=1, max_size=3)),
        st.builds(lambda r: {"not": r}, children),
    ),
    max_leaves=6,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(people=CUSTOMERS, rule_set=st.lists(RULES, min_size=1, max_size=6))
def test_compiled_rules_agree_with_the_reference_meaning(engine, people, rule_set):
    with engine.begin() as conn:
        conn.execute(messages.delete())
        conn.execute(customers.delete())
        if not conn.execute(sa.select(mailings.c.id)).first():
            conn.execute(mailings.insert(), [
                {"id": i, "name": f"m{i}", "channel": "email", "conversion": {}, "status": "sent",
                 "created_at": NOW, "updated_at": NOW} for i in MAILINGS])
        sent: dict[str, dict[int, dict[str, object]]] = {}
        if people:
            rows = []
            for i, p in enumerate(people):
                fields = dict(p)
                sent[f"c{i}"] = fields.pop("messages")
                rows.append(row(f"c{i}", **fields))
            for i, r in enumerate(rows):  # emails are unique; keep what each one contains
                if r["email"] is not None:
                    r["email"] = f"{r['email']}{i}@x.org"
            conn.execute(customers.insert(), rows)
        stored = [dict(r) for r in conn.execute(sa.select(customers)).mappings()]
        got = [{"mailing_id": mailing_id, "customer_id": c["id"], **message}
               for c in stored for mailing_id, message in sent[c["external_id"]].items()]
        if got:
            conn.execute(messages.insert(), got)
        reference = [c | derived(sent[c["external_id"]]) for c in stored]
        for rules in rule_set:
            rule = parse_rules(rules)
            expected = {c["id"] for c in reference if evaluate(rule, c, now=NOW)}
            where = compile_rules(rule, now=NOW)
            actual = set(conn.scalars(sa.select(customers.c.id).where(where)))
            assert actual == expected, json.dumps(rules)


def derived(sent: dict[int, dict[str, object]]) -> dict[str, object]:
    """The fields computed from messages, as the reference meaning reads them."""
    opened = [m["opened_at"] for m in sent.values() if m["opened_at"] is not None]
    clicked = [m["clicked_at"] for m in sent.values() if m["clicked_at"] is not None]
    return {
        "last_opened_at": max(opened, default=None),  # type: ignore[type-var]
        "last_clicked_at": max(clicked, default=None),  # type: ignore[type-var]
        "received_mailing": {i for i, m in sent.items() if m["status"] == "sent" and not m["bounce"]},
        "opened_mailing": {i for i, m in sent.items() if m["opened_at"] is not None},
        "clicked_mailing": {i for i, m in sent.items() if m["clicked_at"] is not None},
    }
