"""One typing rule for attributes: a CSV file, the API and the segment builder agree.

The customers come in through the web import and the API; the segments are
saved through the web rule builder, as a manager makes them."""

from __future__ import annotations

import re
import time
from urllib.parse import urlencode

import pytest
from fastapi.testclient import TestClient

from tests.e2e import test_web_pages
from tests.e2e.test_web_pages import csrf_of
from tidings.services import audience, users
from tidings.services.context import Context

PASSWORD = "long enough password"
# The fixtures of test_web_pages.py: a context and a client of its app with the web UI.
ctx, client = test_web_pages.ctx, test_web_pages.client
CSV = (
    "email,first_name,vip,points,zip,since\n"
    "ann@example.org,Ann,true,120,0042,2024-03-01\n"
    "bob@example.org,Bob,FALSE,95,10115,2023-11-20\n"
    "cid@example.org,Cid,True,7,0042,2024-06-15\n"
    "dee@example.org,Dee,yes,1000,42,\n"
)


@pytest.fixture
def csrf(client: TestClient, ctx: Context) -> str:
    users.create_user(ctx, email="boss@shop.example", password=PASSWORD, role="admin")
    token = csrf_of(client.get("/sign-in").text)
    signed = client.post("/sign-in", data={"email": "boss@shop.example", "password": PASSWORD,
                                            "csrf_token": token, "next": ""})
    assert signed.status_code == 303, signed.text
    return csrf_of(client.get("/segments/new").text)


def import_through_the_web(client: TestClient, csrf: str) -> None:
    """Upload, keep the columns' suggested meanings, import; wait for the report."""
    uploaded = client.post("/customers/import", data={"csrf_token": csrf, "delimiter": ""},
                           files={"file": ("customers.csv", CSV.encode(), "text/csv")})
    assert uploaded.status_code == 303, uploaded.text
    job = uploaded.headers["location"]
    mapping = client.get(job).text
    chosen = re.findall(r'<select id="(target-\d+)"[^>]*>.*?<option value="([^"]*)"[^>]*selected',
                        mapping, flags=re.S)
    names = re.findall(r'<input id="(name-\d+)" name="name-\d+"[^>]*value="([^"]*)"', mapping)
    assert len(chosen) == len(names) == 6, mapping
    started = client.post(job, data={"csrf_token": csrf, **dict(chosen), **dict(names)})
    assert started.status_code == 303, started.text
    deadline = time.monotonic() + 10
    while "Done:" not in (page := client.get(job).text):
        assert time.monotonic() < deadline, page
        time.sleep(0.05)


def save_segment(client: TestClient, csrf: str, name: str, *rows: tuple[str, str, str]) -> int:
    """Save a segment through the rule builder; ``rows`` are (attribute, operator, typed value)."""
    data: list[tuple[str, str]] = [("csrf_token", csrf), ("name", name), ("mode", "builder"),
                                   ("match", "all")]
    for key, op, value in rows:
        data += [("negate", ""), ("field", "attributes"), ("key", key), ("op", op), ("value", value)]
    response = client.post("/segments/new", content=urlencode(data),
                           headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert response.status_code == 303, response.text
    return int(response.headers["location"].rsplit("/", 1)[-1])


def names_in(ctx: Context, segment_id: int) -> set[str]:
    rules = audience.get_segment(ctx, segment_id)["rules"]
    return {c["first_name"] for c in audience.find_customers(ctx, limit=100)
            if audience.count_rules(ctx, {"all": [rules, {"field": "email", "op": "eq",
                                                          "value": c["email"]}]})["count"]}


@pytest.mark.parametrize(("rows", "expected"), [
    ([("vip", "eq", "true")], {"Ann", "Cid"}),
    ([("vip", "eq", "false")], {"Bob"}),
    ([("vip", "ne", "true")], {"Bob", "Dee"}),
    ([("vip", "eq", "yes")], {"Dee"}),
    ([("points", "gt", "100")], {"Ann", "Dee"}),
    ([("points", "lte", "95")], {"Bob", "Cid"}),
    ([("zip", "eq", "0042")], {"Ann", "Cid"}),
    ([("zip", "eq", "42")], {"Ann", "Cid", "Dee"}),
    ([("zip", "contains", "101")], {"Bob"}),
    ([("since", "gte", "2024-01-01")], {"Ann", "Cid"}),
    ([("vip", "eq", "true"), ("points", "gt", "100")], {"Ann"}),
])
def test_a_builder_rule_selects_the_csv_customers_it_reads_as(client, csrf, ctx, rows, expected):
    import_through_the_web(client, csrf)

    segment_id = save_segment(client, csrf, "typed", *rows)

    assert names_in(ctx, segment_id) == expected
    assert audience.count_segment(ctx, segment_id)["count"] == len(expected)


def test_csv_flags_are_stored_as_booleans_and_digits_as_written(client, csrf, ctx):
    import_through_the_web(client, csrf)

    stored = {c["first_name"]: c["attributes"] for c in audience.find_customers(ctx, limit=10)}

    assert stored["Ann"] == {"vip": True, "points": "120", "zip": "0042", "since": "2024-03-01"}
    assert stored["Bob"]["vip"] is False and stored["Dee"]["vip"] == "yes"


def test_api_text_flags_match_the_builders_true(client, csrf, ctx):
    audience.upsert_customers(ctx, [
        {"email": "eve@example.org", "first_name": "Eve", "attributes": {"vip": "TRUE"}},
        {"email": "fay@example.org", "first_name": "Fay", "attributes": {"vip": True}},
        {"email": "gus@example.org", "first_name": "Gus", "attributes": {"vip": "no"}},
    ])

    segment_id = save_segment(client, csrf, "VIPs", ("vip", "eq", "true"))

    assert names_in(ctx, segment_id) == {"Eve", "Fay"}
