"""Customers through the API: upsert, batches, CSV import, lookups."""

from __future__ import annotations


def test_a_customer_is_created_then_updated_by_email(make_ctx, api_for):
    api = api_for(make_ctx())
    first = api.ok("POST", "/customers", {"email": "Ann@Example.org", "first_name": "Ann",
                                          "attributes": {"city": "Riga"}}, status=201)
    assert first["email"] == "ann@example.org" and first["email_status"] == "subscribed"
    again = api.ok("POST", "/customers", {"email": "ann@example.org", "last_name": "Lee",
                                          "attributes": {"vip": True}}, status=201)
    assert again["id"] == first["id"]
    assert (again["first_name"], again["last_name"]) == ("Ann", "Lee")
    assert again["attributes"] == {"city": "Riga", "vip": True}
    found = api.ok("GET", "/customers?email=ANN@example.org")["customers"]
    assert [c["id"] for c in found] == [first["id"]]
    assert api.ok("GET", f"/customers/{first['id']}")["messages"] == []


def test_a_batch_with_one_bad_customer_is_refused_whole_naming_its_index(make_ctx, api_for):
    api = api_for(make_ctx())
    batch = [{"email": "a@example.org"}, {"email": "b@example.org"}, {"email": "not an email"}]
    error = api.post("/customers", {"customers": batch}, expect=422).json()["error"]
    assert error["code"] == "invalid_input"
    assert error["message"].startswith("customers[2]")
    assert error["field"].startswith("customers[2]")
    assert api.ok("GET", "/customers")["customers"] == []


def test_a_batch_returns_ids_in_input_order_and_merges_repeated_keys(make_ctx, api_for):
    api = api_for(make_ctx())
    existing = api.ok("POST", "/customers", {"external_id": "X-1", "email": "x@example.org"}, status=201)
    ids = api.ok("POST", "/customers", {"customers": [
        {"email": "new@example.org", "first_name": "New"},
        {"external_id": "X-1", "first_name": "Updated"},
        {"email": "new@example.org", "last_name": "Twice"},
    ]}, status=201)["ids"]
    assert ids[1] == existing["id"] and ids[0] == ids[2] and ids[0] != ids[1]
    merged = api.ok("GET", f"/customers/{ids[0]}")
    assert (merged["first_name"], merged["last_name"]) == ("New", "Twice")
    assert api.ok("GET", f"/customers/{existing['id']}")["first_name"] == "Updated"


def test_a_batch_over_ten_thousand_is_refused(make_ctx, api_for):
    api = api_for(make_ctx())
    big = [{"email": f"c{i}@example.org"} for i in range(10_001)]
    assert api.post("/customers", {"customers": big}, expect=422).json()["error"]["field"] == "customers"


def test_csv_import_keeps_good_lines_and_reports_bad_ones_by_line(make_ctx, api_for):
    api = api_for(make_ctx())
    body = ("email;first_name;city\n"
            "a@example.org;Ann;Riga\n"
            "broken-address;Bob;Oslo\n"
            "c@example.org;Cid;Lyon\n").encode("cp1251")
    result = api.request("POST", "/customers/import", 200, content=body,
                         headers={"Content-Type": "text/csv"}).json()
    assert result["created"] == 2 and result["updated"] == 0
    assert [e["line"] for e in result["errors"]] == [3]
    assert "email" in result["errors"][0]["message"]
    city = api.ok("GET", "/customers?email=c@example.org")["customers"][0]["attributes"]["city"]
    assert city == "Lyon"
    again = api.request("POST", "/customers/import", 200, content=b"email\na@example.org\n",
                        headers={"Content-Type": "text/csv"}).json()
    assert again == {"created": 0, "updated": 1, "errors": []}


def test_segments_validate_rules_and_count_reachable_customers(make_ctx, api_for):
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"customers": [
        {"email": "a@example.org", "attributes": {"city": "Riga"}},
        {"email": "b@example.org", "attributes": {"city": "Riga"}, "email_status": "unsubscribed"},
        {"email": "c@example.org", "attributes": {"city": "Oslo"}},
    ]}, status=201)
    bad = api.post("/segments", {"name": "x", "rules": {"all": [{"field": "email", "op": "like",
                                                                 "value": "a"}]}}, expect=422)
    assert "rules.all[0]" in bad.json()["error"]["message"]
    seg = api.ok("POST", "/segments", {"name": "Riga", "rules": {
        "field": "attributes.city", "op": "eq", "value": "Riga"}}, status=201)
    counts = api.ok("GET", f"/segments/{seg['id']}/count")
    assert counts["count"] == 2 and counts["email"] == 1
