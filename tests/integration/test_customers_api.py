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


def test_a_one_line_cp1252_import_keeps_its_accents(make_ctx, api_for):
    api = api_for(make_ctx())
    body = "email,last_name,favourite\nm@example.org,Müller,piña colada\n".encode("cp1252")
    result = api.request("POST", "/customers/import", 200, content=body,
                         headers={"Content-Type": "text/csv"}).json()
    assert result == {"created": 1, "updated": 0, "errors": []}
    (customer,) = api.ok("GET", "/customers?email=m@example.org")["customers"]
    assert (customer["last_name"], customer["attributes"]) == ("Müller", {"favourite": "piña colada"})


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


def test_new_customers_come_back_exactly_whichever_way_they_were_written(make_ctx, api_for):
    """On PostgreSQL new customers go in by COPY: awkward text and nested
    attributes must come back as they went in, with ids in input order."""
    api = api_for(make_ctx())
    awkward = 'Tab\there "quoted" back\\slash\nnew line, comma; Ünïcödé 🎉'
    people = [
        {"email": "a@example.org", "first_name": awkward,
         "attributes": {"k": awkward, "n": [1, "two", None], "vip": True}},
        {"external_id": "ext\t1", "last_name": "\\N", "sms_status": "unsubscribed", "phone": "+37120000001"},
        {"email": "b@example.org", "attributes": {}},
    ]
    ids = api.ok("POST", "/customers", {"customers": people}, status=201)["ids"]

    assert ids == sorted(ids) and len(set(ids)) == 3
    first, second, third = (api.ok("GET", f"/customers/{i}") for i in ids)
    assert first["first_name"] == awkward
    assert first["attributes"] == {"k": awkward, "n": [1, "two", None], "vip": True}
    assert second["external_id"] == "ext\t1" and second["last_name"] == "\\N"
    assert second["email"] is None and second["sms_status"] == "unsubscribed"
    assert second["email_status"] == "subscribed"
    assert third["email"] == "b@example.org" and third["attributes"] == {}
    more = api.ok("POST", "/customers", {"customers": [{"email": "c@example.org"}]}, status=201)["ids"]
    assert more[0] > ids[-1]


def test_a_customer_inserted_meanwhile_by_someone_else_fails_the_batch_as_a_conflict(engine):
    """Two imports of the same new address at once: the second waits for the
    first and then fails as an INSERT would (IntegrityError), nothing half-done."""
    import threading

    import pytest
    import sqlalchemy as sa

    from tidings.domain.customers import validate_customer
    from tidings.services.context import utcnow
    from tidings.store import customers as store

    if engine.dialect.name != "postgresql":
        pytest.skip("SQLite serialises writers: the second import would see the first")
    items = [validate_customer({"email": "race@example.org"})]
    failures: list[Exception] = []

    def second_import() -> None:
        try:
            with engine.begin() as conn:
                store.upsert_many(conn, items, now=utcnow())
        except Exception as exc:  # noqa: BLE001 - collected for the assertion
            failures.append(exc)

    with engine.connect() as first:
        with first.begin():
            store.upsert_many(first, items, now=utcnow())
            racer = threading.Thread(target=second_import)
            racer.start()
            racer.join(timeout=1.0)
            assert racer.is_alive()  # waiting on the first import's row
        racer.join(timeout=10)
    assert len(failures) == 1 and isinstance(failures[0], sa.exc.IntegrityError)
    with engine.connect() as conn:
        assert conn.execute(sa.text("select count(*) from customers")).scalar_one() == 1
