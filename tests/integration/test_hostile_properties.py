"""Any input on SQLite and PostgreSQL: a valid rule always runs as SQL, and a CSV
import either keeps its good lines whole or writes nothing (hypothesis)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings

from tests.unit.test_hostile_properties import CSV_BYTES, RULES
from tidings.domain.segments import parse_rules
from tidings.errors import InvalidInput
from tidings.services import audience
from tidings.store.segments import count_matching
from tidings.store.tables import customers

SOME = settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture
def ctx(make_ctx):  # type: ignore[no-untyped-def]
    made = make_ctx()
    audience.upsert_customers(made, [
        {"email": "ann@example.org", "first_name": "Ann", "attributes": {"city": "Riga", "n": 5}},
        {"email": "bob@example.org", "attributes": {"n": "12", "city": None}},
        {"external_id": "c3"},
    ])
    return made


@SOME
@given(rules=RULES)
def test_every_rule_that_parses_runs_as_sql_on_both_databases(ctx: Any, rules: Any) -> None:
    try:
        parsed = parse_rules(rules)
    except InvalidInput:
        return
    with ctx.engine.connect() as conn:
        assert 0 <= count_matching(conn, parsed) <= 3


@SOME
@given(data=CSV_BYTES)
def test_a_csv_import_keeps_its_good_lines_whole_or_writes_nothing(ctx: Any, data: bytes) -> None:
    with ctx.engine.begin() as conn:
        conn.execute(customers.delete().where(customers.c.id > 3))
        before = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
    try:
        report = audience.import_csv(ctx, data)
    except InvalidInput:
        with ctx.engine.connect() as conn:
            after = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
        assert after == before  # refused whole: nothing written
        return
    with ctx.engine.connect() as conn:
        after = conn.execute(sa.select(sa.func.count()).select_from(customers)).scalar_one()
    assert after == before + report["created"]
    assert all(isinstance(e["line"], int) and e["message"] for e in report["errors"])
