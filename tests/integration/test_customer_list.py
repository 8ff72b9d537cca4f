"""The customer list (totals, filters, keyset pages), exports of a segment as
CSV, and imports with a column mapping, through the API on both databases."""

from __future__ import annotations

import csv
import io
from typing import Any

import pytest

from tidings.domain.actors import SYSTEM
from tidings.services import imports


def people(api: Any) -> list[int]:
    ids: list[int] = api.ok("POST", "/customers", {"customers": [
        {"email": f"p{i}@example.org", "first_name": f"P{i}",
         "email_status": "unsubscribed" if i % 3 == 0 else "subscribed",
         "sms_status": "unsubscribed" if i == 4 else None,
         "attributes": {"city": "Riga" if i % 2 else "Oslo"}} for i in range(7)]},
        status=201)["ids"]
    return ids


def test_pages_go_newest_first_with_the_total_and_keyset_links(make_ctx, api_for):
    api = api_for(make_ctx())
    ids = people(api)

    first = api.ok("GET", "/customers?limit=3")
    second = api.ok("GET", f"/customers?limit=3&before={first['next_before']}")
    third = api.ok("GET", f"/customers?limit=3&before={second['next_before']}")

    newest_first = ids[::-1]
    assert [c["id"] for c in first["customers"]] == newest_first[:3]
    assert [c["id"] for c in second["customers"]] == newest_first[3:6]
    assert [c["id"] for c in third["customers"]] == newest_first[6:]
    assert (first["total"], third["total"], third["next_before"]) == (7, 7, None)


def test_the_list_filters_by_status_per_channel_by_segment_and_by_text(make_ctx, api_for):
    api = api_for(make_ctx())
    ids = people(api)
    riga = api.ok("POST", "/segments", {"name": "Riga", "rules": {
        "field": "attributes.city", "op": "eq", "value": "Riga"}}, status=201)

    def found(query: str) -> tuple[list[int], int]:
        page = api.ok("GET", "/customers?" + query)
        return sorted(c["id"] for c in page["customers"]), page["total"]

    assert found("email_status=unsubscribed") == ([ids[0], ids[3], ids[6]], 3)
    assert found("sms_status=unsubscribed") == ([ids[4]], 1)
    assert found(f"segment_id={riga['id']}") == ([ids[1], ids[3], ids[5]], 3)
    assert found(f"segment_id={riga['id']}&email_status=subscribed") == ([ids[1], ids[5]], 2)
    assert found("q=p5@example.org") == ([ids[5]], 1)
    assert found("q=%25") == ([], 0)  # a LIKE wildcard is just a character
    error = api.get("/customers?email_status=gone", expect=422).json()["error"]
    assert error["field"] == "email_status"


def test_a_page_back_from_the_middle_returns_the_page_before(make_ctx):
    from tidings.services import customers

    ctx = make_ctx()
    customers.upsert_customers(ctx, [{"email": f"k{i}@example.org"} for i in range(10)])
    first = customers.list_customers(ctx, limit=4)
    second = customers.list_customers(ctx, before=first["next_before"], limit=4)
    back = customers.list_customers(ctx, after=second["prev_after"], limit=4)

    assert first["prev_after"] is None and second["prev_after"] == second["customers"][0]["id"]
    assert [c["id"] for c in back["customers"]] == [c["id"] for c in first["customers"]]
    assert back["prev_after"] is None and back["next_before"] == first["next_before"]


def test_a_segment_exports_as_csv_that_imports_back(make_ctx, api_for):
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"customers": [
        {"email": "a@example.org", "first_name": "=HYPERLINK(\"x\")", "phone": "+37255501234",
         "attributes": {"city": "Riga", "vip": True, "tags": ["a", "b"]}},
        {"email": "b@example.org", "last_name": "-minus", "attributes": {"city": "Oslo"}},
        {"email": "c@example.org", "attributes": {"city": "Riga", "points": "0042"}},
    ]}, status=201)
    riga = api.ok("POST", "/segments", {"name": "Riga", "rules": {
        "field": "attributes.city", "op": "eq", "value": "Riga"}}, status=201)

    response = api.get(f"/customers/export.csv?segment_id={riga['id']}")

    assert response.headers["content-type"].startswith("text/csv")
    assert "attachment" in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [r["email"] for r in rows] == ["a@example.org", "c@example.org"]
    assert list(rows[0])[-4:] == ["city", "points", "tags", "vip"]
    assert rows[0]["first_name"] == "'=HYPERLINK(\"x\")"  # not a formula in a spreadsheet
    assert rows[0]["phone"] == "+37255501234" and rows[0]["vip"] == "true"
    assert rows[0]["tags"] == '["a", "b"]' and rows[1]["points"] == "0042"
    assert api.get("/customers/export.csv?segment_id=999999", expect=404).json()["error"]["code"] \
        == "segment_not_found"
    everyone = list(csv.DictReader(io.StringIO(api.get("/customers/export.csv").text)))
    assert everyone[1]["last_name"] == "'-minus"
    again = api.request("POST", "/customers/import", 200, content=response.content,
                        headers={"Content-Type": "text/csv"}).json()
    assert again["updated"] == 2 and again["errors"] == []


SHOPIFY = (
    b"Customer ID,First Name,Last Name,Email,Accepts Email Marketing,Phone,Accepts SMS Marketing,"
    b"Total Spent\n"
    b"1001,Ann,Lee,ann@example.org,yes,+37255500001,no,120.50\n"
    b"1002,Bob,Ray,bob@example.org,no,,yes,0.00\n"
    b"1003,Cid,Oak,cid@example.org,maybe,,,5\n"
    b"1004,Dee,Elm,dee@example.org,yes,,,1\n"
)
MAP = {"Customer ID": "external_id", "First Name": "first_name", "Last Name": "last_name",
       "Accepts Email Marketing": "email_consent", "Accepts SMS Marketing": "sms_consent",
       "Total Spent": "attributes.total_spent"}


def test_an_import_with_a_mapped_consent_column_unsubscribes_those_who_said_no(make_ctx, api_for):
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"email": "dee@example.org", "email_status": "unsubscribed"},
           status=201)

    result = api.request("POST", "/customers/import", 200, content=SHOPIFY,
                         params=[("map", f"{k}={v}") for k, v in MAP.items()],
                         headers={"Content-Type": "text/csv"}).json()

    assert (result["created"], result["updated"]) == (2, 1)
    assert result["errors"] == [{"line": 4, "message":
                                 "Column 'Accepts Email Marketing': 'maybe' is neither yes nor no."}]
    by_email = {c["email"]: c for c in api.ok("GET", "/customers?limit=10")["customers"]}
    ann, bob, dee = by_email["ann@example.org"], by_email["bob@example.org"], by_email["dee@example.org"]
    assert (ann["external_id"], ann["first_name"], ann["attributes"]) == \
        ("1001", "Ann", {"total_spent": "120.50"})
    assert (ann["email_status"], ann["sms_status"]) == ("subscribed", "unsubscribed")
    assert (bob["email_status"], bob["sms_status"]) == ("unsubscribed", "subscribed")
    assert dee["email_status"] == "unsubscribed"  # "yes" in a file never subscribes again


@pytest.mark.parametrize(("pairs", "words"), [
    (["Nope=email"], "the file has no column 'Nope'"),
    (["Email=mail"], "unknown target 'mail'"),
    (["Email=ignore"], 'needs an "email" or an "external_id" column'),
    (["Customer ID=email"], "both give email"),
    (["Accepts Email Marketing"], "is not HEADER=TARGET"),
])
def test_a_mapping_that_does_not_fit_is_refused_and_imports_nothing(make_ctx, api_for, pairs,
                                                                     words):
    api = api_for(make_ctx())
    response = api.request("POST", "/customers/import", 422, content=SHOPIFY,
                           params=[("map", p) for p in pairs],
                           headers={"Content-Type": "text/csv"}).json()
    assert words in response["error"]["message"]
    assert api.ok("GET", "/customers")["total"] == 0


def test_a_previewed_file_imports_in_chunks_with_progress_and_its_report(make_ctx, monkeypatch):
    ctx = make_ctx()
    monkeypatch.setattr(imports, "CHUNK", 2)
    shown = imports.preview(ctx, SHOPIFY, filename="customers_export.csv", actor=SYSTEM)
    assert shown["status"] == "previewed" and shown["total_lines"] == 5
    assert shown["header"][:2] == ["Customer ID", "First Name"] and len(shown["rows"]) == 4
    assert shown["targets"] == ["external_id", "first_name", "last_name", "email",
                                "email_consent", "phone", "sms_consent", "attributes.Total Spent"]

    done = imports.start(ctx, shown["id"], dict(zip(shown["header"], shown["targets"],
                                                    strict=True)), actor=SYSTEM, background=False)

    assert (done["status"], done["percent"], done["created"], done["updated"]) == ("done", 100.0, 3, 0)
    assert done["errors"] == [{"line": 4, "message":
                               "Column 'Accepts Email Marketing': 'maybe' is neither yes nor no."}]
    assert done["done_lines"] == 5 and "header" not in done


def test_a_background_import_that_meets_a_broken_line_keeps_the_lines_before(make_ctx,
                                                                             monkeypatch):
    ctx = make_ctx()
    monkeypatch.setattr(imports, "CHUNK", 1)
    data = b"email,city\na@example.org,Riga\nb@example.org," + b"x" * 200_000 + b"\nc@example.org,Lyon\n"
    shown = imports.preview(ctx, data, filename="broken.csv", actor=SYSTEM)

    done = imports.start(ctx, shown["id"], {"email": "email"}, actor=SYSTEM, background=False)

    assert (done["status"], done["created"], done["done_lines"]) == ("failed", 1, 2)
    assert done["failure"] == ("The file is not valid CSV near line 3: field larger than field "
                               "limit (131072). The lines before it were imported.")


def test_a_preview_never_started_is_deleted_a_day_later(make_ctx):
    from datetime import timedelta

    from tidings.errors import NotFound

    ctx = make_ctx()
    now = ctx.now()
    ctx.clock = lambda: now
    old = imports.preview(ctx, SHOPIFY, filename="old.csv", actor=SYSTEM)
    ctx.clock = lambda: now + timedelta(hours=23)
    imports.preview(ctx, SHOPIFY, filename="newer.csv", actor=SYSTEM)
    assert imports.status(ctx, old["id"])["status"] == "previewed"
    ctx.clock = lambda: now + timedelta(days=1, minutes=1)
    imports.preview(ctx, SHOPIFY, filename="newest.csv", actor=SYSTEM)
    with pytest.raises(NotFound):
        imports.status(ctx, old["id"])
