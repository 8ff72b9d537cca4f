"""Hostile input at the edge, on SQLite and PostgreSQL: every refusal is a clear
4xx in the envelope naming the field, nothing is half-applied, and whatever
escapes still leaves as the envelope (a page in the web UI), never a bare 500."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from tests.builders import draft_mailing, numbered
from tests.e2e.test_web_pages import _app, sign_in
from tidings.services import audience, quotas, segments
from tidings.services.context import Context

HUGE = 2**64
ERRORS_HAVE = {"code", "message"}


def error_of(response: httpx.Response, status: int) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and ERRORS_HAVE <= set(body["error"]), body
    return body["error"]  # type: ignore[no-any-return]


@pytest.fixture
def ctx(make_ctx) -> Context:  # type: ignore[no-untyped-def]
    made: Context = make_ctx()
    return made


@pytest.fixture
def api(ctx, api_for):  # type: ignore[no-untyped-def]
    return api_for(ctx)


# -------------------------------------------------------------------- integers


@pytest.mark.parametrize(("path", "field"), [
    (f"/customers/{HUGE}", "customer_id"),
    (f"/mailings/{HUGE}", "mailing_id"),
    (f"/segments/{HUGE}/count", "segment_id"),
    (f"/customers?offset={HUGE}", "offset"),
    (f"/mailings?limit={HUGE}", "limit"),
    (f"/domains/1/health?days={HUGE}", "days"),
])
def test_integers_beyond_64_bits_in_the_address_are_a_422_naming_the_parameter(api, path, field):
    error = error_of(api.get(path, expect=None), 422)

    assert error["code"] == "invalid_input" and error["field"] == field


@pytest.mark.parametrize(("method", "path", "body", "field"), [
    ("POST", "/segments", {"name": "s", "rules": {"field": "orders_count", "op": "gt", "value": HUGE}},
     "rules.value"),
    ("POST", "/segments", {"name": "s", "rules": {"field": "orders_total", "op": "gt", "value": 10**16}},
     "rules"),
    ("POST", "/segments", {"name": "s", "rules": {"field": "attributes.n", "op": "lt", "value": 1e300}},
     "rules"),
    ("POST", "/quota/topup", {"channel": "email", "amount": 2**63}, "amount"),
    ("POST", "/quota/topup", {"channel": "email", "amount": 10**13}, "amount"),
    ("POST", "/orders", {"external_id": "o1", "customer_email": "c000@example.org",
                         "total": HUGE, "created_at": "2026-01-01T00:00:00Z"}, "total"),
    ("POST", "/orders", {"external_id": "o1", "customer_email": "c000@example.org",
                         "total": "1e999999", "created_at": "2026-01-01T00:00:00Z"}, "total"),
    ("POST", "/templates/1/preview", {"customer_id": HUGE}, "customer_id"),
    ("POST", "/events", {"type": "bounce", "message_id": "99999999999999999999"}, None),
    ("POST", "/mailings", {"name": "m", "segment_id": 2**63 - 1}, "segment_id"),
])
def test_integers_beyond_what_is_stored_in_a_body_are_refused_naming_the_field(
        api, method, path, body, field):
    draft_mailing(api, numbered(1))
    response = api.request(method, path, json=body)

    error = error_of(response, 404 if path == "/events" else 422)
    if field is not None:
        assert error["field"] == field
    assert api.ok("GET", "/quota")["email"]["balance"] is None  # nothing was applied


def test_a_quota_stays_a_whole_number_up_to_its_ceiling(api):
    api.ok("POST", "/quota/topup", {"channel": "email", "amount": quotas.MAX_TOPUP})
    for _ in range(3):
        api.ok("POST", "/quota/topup", {"channel": "email", "amount": quotas.MAX_TOPUP})

    assert api.ok("GET", "/quota")["email"]["balance"] == 4 * quotas.MAX_TOPUP
    assert isinstance(api.ok("GET", "/quota")["email"]["balance"], int)


def test_a_segment_cannot_be_saved_with_an_unusable_value_so_the_segments_page_stays_up(
        api, ctx):
    bad = {"name": "s", "rules": {"field": "orders_count", "op": "gt", "value": 2**63}}
    error_of(api.post("/segments", bad), 422)
    api.ok("POST", "/segments", {"name": "fine", "rules": {}}, status=201)

    assert [s["name"] for s in api.ok("GET", "/segments")["segments"]] == ["fine"]
    assert audience.count_segment(ctx, api.ok("GET", "/segments")["segments"][0]["id"])["count"] == 0


# -------------------------------------------------------------------- text and types


@pytest.mark.parametrize(("body", "field"), [
    ({"email": "a@example.org", "first_name": "A\u0000nn"}, "first_name"),
    ({"email": "a@example.org", "attributes": {"city": "R\ud800iga"}}, "attributes.city"),
    ({"customers": [{"email": "a@example.org"}, {"email": "b@example.org", "last_name": "\udfff"}]},
     "customers[1].last_name"),
])
def test_nul_characters_and_lone_surrogates_are_refused_naming_the_field(api, body, field):
    response = api.post("/customers", content=json.dumps(body).encode(),
                        headers={"Content-Type": "application/json"})

    assert error_of(response, 422)["field"] == field
    assert api.ok("GET", "/customers")["customers"] == []


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/segments", {"name": "s" * 256, "rules": {}}, "name"),
    ("/templates", {"name": "t" * 256, "channel": "sms", "text": "Hi"}, "name"),
    ("/mailings", {"name": "m" * 256}, "name"),
    ("/mailings", {"name": "m", "from_name": "f" * 256}, "from_name"),
    ("/mailings", {"name": 7}, "name"),
    ("/mailings", {"name": "m", "from_email": ["a@b.c"]}, "from_email"),
    ("/mailings", {"name": "m", "segment_id": "one"}, "segment_id"),
    ("/segments", {"name": ["s"], "rules": {}}, "name"),
])
def test_names_longer_than_their_column_and_wrong_types_are_a_422(api, path, body, field):
    assert error_of(api.post(path, body), 422)["field"] == field


def test_a_wrong_type_in_a_mailing_change_is_a_422_and_changes_nothing(api):
    mailing = draft_mailing(api, numbered(1))["mailing"]

    for body, field in (({"delay_hours": "soon"}, "delay_hours"), ({"name": {"x": 1}}, "name"),
                        ({"from_name": "n" * 300}, "from_name")):
        assert error_of(api.request("PATCH", f"/mailings/{mailing['id']}", json=body), 422)["field"] == field
    assert api.ok("GET", f"/mailings/{mailing['id']}")["name"] == mailing["name"]


@pytest.mark.parametrize(("path", "body", "field"), [
    ("/mailings/{id}/schedule", {"send_at": "9999-12-31T23:59:59-14:00"}, "send_at"),
    ("/mailings/{id}/schedule", {"send_at": "0001-01-01T00:00:00+14:00"}, "send_at"),
    ("/orders", {"external_id": "o", "customer_email": "c000@example.org", "total": 1,
                 "created_at": "0001-01-01T00:00:00+14:00"}, "created_at"),
    ("/segments", {"name": "s", "rules": {"field": "created_at", "op": "lt",
                                          "value": "0001-01-01T00:00:00+14:00"}}, "rules"),
])
def test_extreme_datetimes_are_a_422_naming_the_field(api, path, body, field):
    mailing = draft_mailing(api, numbered(1))["mailing"]

    error = error_of(api.post(path.format(id=mailing["id"]), body), 422)

    assert error["field"] == field
    assert api.ok("GET", f"/mailings/{mailing['id']}")["status"] == "draft"


def test_deeply_nested_json_is_a_422_not_a_crash(api):
    body = '{"name": "s", "rules": ' + "[" * 100_000 + "]" * 100_000 + "}"

    error = error_of(api.post("/segments", content=body.encode(),
                              headers={"Content-Type": "application/json"}), 422)

    assert "levels deep" in error["message"]


def test_a_nul_character_in_the_address_or_query_is_a_422(api):
    assert error_of(api.get("/customers?q=a%00b", expect=None), 422)["field"] == "query"
    assert error_of(api.get("/customers/1%00", expect=None), 422)["field"] == "path"


def test_customer_search_takes_percent_and_underscore_literally(api):
    api.post("/customers", {"customers": [
        {"email": "full@example.org", "first_name": "Ann 100%"},
        {"email": "other@example.org", "first_name": "Ann 1000"},
        {"email": "a_b@example.org"}, {"email": "axb@example.org"}]}, expect=201)

    def found(query: str) -> list[str]:
        return [c["email"] for c in api.ok("GET", f"/customers?q={httpx.QueryParams({'q': query})['q']}")
                ["customers"]]

    assert found("100%") == ["full@example.org"]
    assert found("a_b") == ["a_b@example.org"]
    assert found("%") == ["full@example.org"]


# -------------------------------------------------------------------- sizes


def test_a_json_body_over_its_limit_is_a_413_before_it_is_read(make_ctx, api_for):
    api = api_for(make_ctx(max_json_bytes=64 * 1024))
    body = json.dumps({"name": "s", "rules": {"field": "email", "op": "in",
                                              "value": ["x" * 100] * 1000}}).encode()

    declared = api.post("/segments", content=body, headers={"Content-Type": "application/json"})
    streamed = api.post("/segments", content=iter([body[:40_000], body[40_000:]]),
                        headers={"Content-Type": "application/json"})

    for response in (declared, streamed):
        error = error_of(response, 413)
        assert error["code"] == "too_large" and "64 KiB" in error["message"]
    assert api.ok("GET", "/segments")["segments"] == []


def test_a_csv_over_its_limit_is_a_413_and_imports_nothing(make_ctx, api_for):
    api = api_for(make_ctx(max_csv_bytes=64 * 1024))
    csv = "email\n" + "".join(f"c{i}@example.org\n" for i in range(5000))

    response = api.post("/customers/import", content=csv.encode(), headers={"Content-Type": "text/csv"})

    assert error_of(response, 413)["code"] == "too_large"
    assert api.ok("GET", "/customers")["customers"] == []


# -------------------------------------------------------------------- the envelope everywhere


def test_a_wrong_method_is_a_405_with_allow_listing_every_method_of_the_address(api):
    response = api.post("/mailings/1", {})

    error = error_of(response, 405)
    assert response.headers["Allow"] == "DELETE, GET, PATCH"
    assert "DELETE, GET, PATCH" in error["message"]
    assert api.request("DELETE", "/mailings/1").status_code == 404  # an allowed method is routed


def test_an_unexpected_error_is_a_500_in_the_envelope_with_a_logged_reference(
        api, monkeypatch, caplog):
    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("password=hunter2 in /srv/tidings/secret.py")

    monkeypatch.setattr(segments, "list_segments", broken)
    with caplog.at_level(logging.ERROR, logger="tidings.api"):
        response = api.get("/segments", expect=None)

    error = error_of(response, 500)
    assert error["code"] == "internal_error"
    assert "hunter2" not in response.text and "secret.py" not in response.text
    reference = re.search(r"reference ([0-9a-f]{12})", error["message"])
    assert reference is not None
    logged = [r for r in caplog.records if reference.group(1) in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # the traceback is in the log, not the answer


def test_docs_pages_that_load_outside_scripts_are_gone_and_openapi_stays(api):
    for path in ("/docs", "/redoc"):
        assert api.client.get(path).status_code == 404
    document = api.client.get("/openapi.json").json()

    operation = document["paths"]["/api/v1/customers"]["post"]
    assert operation["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/CustomersBody"}
    assert {"400", "401", "413", "415", "422", "500"} <= set(operation["responses"])
    assert document["components"]["schemas"]["Error"]["required"] == ["error"]


# -------------------------------------------------------------------- the web UI


@pytest.fixture
def web(ctx: Context) -> Iterator[tuple[TestClient, str]]:
    with TestClient(_app(ctx), follow_redirects=False) as client:
        yield client, sign_in(client, ctx)


def test_web_forms_answer_422_pages_where_they_failed_before(web, ctx):
    client, token = web

    nul = client.post("/segments/new", data={"name": "A\x00", "match": "all", "csrf_token": token})
    digits = client.post("/quota/topup", data={"channel": "email", "amount": "²³", "csrf_token": token})
    huge = client.post("/quota/topup", data={"channel": "email", "amount": "9" * 5000,
                                             "csrf_token": token})
    deep = client.post("/segments/new", data={"name": "S", "mode": "json",
                                              "rules_json": "[" * 50_000, "csrf_token": token})

    for response in (nul, digits, huge, deep):
        assert response.status_code == 422, response.text
        assert "text/html" in response.headers["content-type"]
    assert audience.list_segments(ctx) == []


def test_web_addresses_with_integers_beyond_64_bits_are_not_found_pages(web):
    client, _ = web

    for path in (f"/customers/{HUGE}", f"/mailings/{HUGE}", f"/segments/{HUGE}"):
        response = client.get(path)
        assert response.status_code == 404 and "There is no such page" in response.text


def test_an_unexpected_error_in_a_page_is_a_500_page_with_a_reference(web, monkeypatch):
    client, _ = web

    def broken(*_: Any, **__: Any) -> Any:
        raise RuntimeError("internals")

    monkeypatch.setattr(segments, "list_segments", broken)
    response = client.get("/segments")

    assert response.status_code == 500
    assert "text/html" in response.headers["content-type"] and "internals" not in response.text
    assert re.search(r"reference [0-9a-f]{12}", response.text)
