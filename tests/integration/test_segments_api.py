"""Segments through the API: copy, delete (refused while a mailing needs it),
and relative dates that count from the clock, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from tests.builders import draft_mailing, numbered
from tidings.services import audit


def test_a_copy_has_the_same_rules_and_its_own_name(make_ctx, api_for):
    api = api_for(make_ctx())
    rules = {"all": [{"field": "orders_total", "op": "gt", "value": 100},
                     {"field": "last_order_at", "op": "within_days", "value": 90}]}
    original = api.ok("POST", "/segments", {"name": "Big spenders", "rules": rules}, status=201)

    copy = api.ok("POST", f"/segments/{original['id']}/copy", status=201)

    assert copy["id"] != original["id"]
    assert (copy["name"], copy["rules"], copy["relative"]) == ("Copy of Big spenders", rules, True)
    assert api.post("/segments/999999/copy", expect=404).json()["error"]["code"] == \
        "segment_not_found"


def test_a_segment_can_be_renamed(make_ctx, api_for):
    api = api_for(make_ctx())
    segment = api.ok("POST", "/segments", {"name": "Old", "rules": {}}, status=201)

    renamed = api.ok("PATCH", f"/segments/{segment['id']}", {"name": "  New  "})

    assert (renamed["name"], renamed["rules"], renamed["relative"]) == ("New", {}, False)
    error = api.request("PATCH", f"/segments/{segment['id']}", 422, json={"name": " "}).json()
    assert error["error"]["field"] == "name"


def test_deleting_a_segment_detaches_drafts_and_records_who(make_ctx, api_for, monkeypatch):
    entries: list[tuple[str, str]] = []
    monkeypatch.setattr(audit, "record", lambda conn, actor, action, subject, detail=None, **kw:
                        entries.append((actor.name, action)))
    api = api_for(make_ctx())
    world = draft_mailing(api, numbered(2))
    segment, mailing = world["segment"]["id"], world["mailing"]["id"]

    assert api.request("DELETE", f"/segments/{segment}", 204).content == b""

    api.get(f"/segments/{segment}", expect=404)
    assert api.ok("GET", f"/mailings/{mailing}")["segment_id"] is None
    refused = api.post(f"/mailings/{mailing}/send", expect=422).json()["error"]
    assert refused["code"] == "mailing_incomplete" and refused["field"] == "segment_id"
    assert entries == [("TIDINGS_ADMIN_TOKEN", "segment.delete")]
    api.request("DELETE", f"/segments/{segment}", 404)


@pytest.mark.parametrize("start", ["schedule", "send"])
def test_a_segment_a_scheduled_or_sending_mailing_uses_cannot_be_deleted(make_ctx, api_for, start):
    api = api_for(make_ctx())
    world = draft_mailing(api, numbered(2), name="Spring sale")
    segment, mailing = world["segment"]["id"], world["mailing"]["id"]
    if start == "schedule":
        later = (datetime.now(UTC) + timedelta(days=1)).isoformat()
        api.ok("POST", f"/mailings/{mailing}/schedule", {"send_at": later})
    else:
        api.ok("POST", f"/mailings/{mailing}/send")  # no worker runs: it stays sending

    error = api.request("DELETE", f"/segments/{segment}", 409).json()["error"]

    status = "scheduled" if start == "schedule" else "sending"
    assert error["code"] == "segment_in_use"
    assert f"“Spring sale” ({status})" in error["message"]
    assert api.ok("GET", f"/segments/{segment}")["id"] == segment


def test_a_relative_date_segment_counts_differently_as_the_clock_moves(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    now = datetime(2030, 6, 1, 12, tzinfo=UTC)
    ctx.clock = lambda: now
    ann = api.ok("POST", "/customers", {"email": "ann@example.org"}, status=201)
    api.ok("POST", "/orders", {"external_id": "A-1", "customer_id": ann["id"], "total": "10",
                               "created_at": (now - timedelta(days=10)).isoformat()}, status=201)
    segment = api.ok("POST", "/segments", {"name": "Bought lately", "rules": {
        "field": "last_order_at", "op": "within_days", "value": 30}}, status=201)

    assert api.ok("GET", f"/segments/{segment['id']}/count")["count"] == 1
    later = now + timedelta(days=25)
    ctx.clock = lambda: later
    assert api.ok("GET", f"/segments/{segment['id']}/count")["count"] == 0
    stored = api.ok("GET", f"/segments/{segment['id']}")
    assert stored["rules"]["value"] == 30 and stored["relative"] is True  # still relative


def test_a_bad_relative_rule_is_refused_naming_it(make_ctx, api_for):
    api = api_for(make_ctx())
    error = api.post("/segments", {"name": "x", "rules": {"all": [
        {"field": "created_at", "op": "lt", "value": {"days_ago": "a year"}}]}},
        expect=422).json()["error"]
    assert error["field"] == "rules.all[0]" and "whole number of days" in error["message"]

