"""Editing, deleting and erasing customers through the API, on both databases:
PATCH, DELETE, POST /customers/{id}/erase, and what each keeps."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, links_of, mail_to, numbered, send, stats, visit
from tidings.services import audit
from tidings.services.sending import make_worker
from tidings.store.tables import erased_contacts, messages, metadata, orders, suppressions

ANN = {"email": "annabelle@example.org", "first_name": "Annabelle", "last_name": "Quixote",
       "phone": "+37255501234", "attributes": {"city": "Tartu", "vip": True}}


@pytest.fixture
def audited(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str, str]]:
    """What the services write to the audit log: ``(actor, action, subject)``."""
    entries: list[tuple[str, str, str]] = []

    def record(conn: Any, actor: Any, action: str, subject: str, detail: Any = None,
               **kw: Any) -> None:
        entries.append((actor.name, action, subject))

    monkeypatch.setattr(audit, "record", record)
    return entries


def everything(ctx: Any) -> str:
    """Every value of every row of every table, as one text to search."""
    parts = []
    with ctx.engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in conn.execute(sa.select(table)):
                parts.extend(str(v) for v in row)
    return "\n".join(parts)


# -- PATCH ---------------------------------------------------------------------------------


def test_patch_changes_the_given_fields_and_merges_attributes(make_ctx, api_for, audited):
    api = api_for(make_ctx())
    ann = api.ok("POST", "/customers", ANN, status=201)

    changed = api.ok("PATCH", f"/customers/{ann['id']}", {
        "first_name": "Ann", "phone": None, "sms_status": "unsubscribed",
        "attributes": {"vip": None, "tier": "gold"}})

    assert (changed["first_name"], changed["last_name"], changed["phone"]) == ("Ann", "Quixote", None)
    assert changed["attributes"] == {"city": "Tartu", "tier": "gold"}
    assert (changed["email_status"], changed["sms_status"]) == ("subscribed", "unsubscribed")
    assert api.ok("GET", f"/customers/{ann['id']}")["first_name"] == "Ann"
    assert audited == [("TIDINGS_ADMIN_TOKEN", "customer.update", f"customer {ann['id']}")]


@pytest.mark.parametrize(("body", "field", "words"), [
    ({"nickname": "A"}, "nickname", "Unknown customer field"),
    ({"email": "not an address"}, "email", "not a valid address"),
    ({"email": None}, "email", 'needs an "email" or an "external_id"'),
    ({"email_status": None}, "email_status", "cannot be cleared"),
    ({"sms_status": "maybe"}, "sms_status", "must be one of"),
    ({"attributes": ["a"]}, "attributes", "must be an object"),
])
def test_a_bad_patch_is_refused_naming_the_field_and_changes_nothing(make_ctx, api_for, body,
                                                                     field, words):
    api = api_for(make_ctx())
    ann = api.ok("POST", "/customers", ANN, status=201)

    error = api.request("PATCH", f"/customers/{ann['id']}", 422, json=body).json()["error"]

    assert error["field"] == field and words in error["message"]
    assert api.ok("GET", f"/customers/{ann['id']}") | {"messages": []} == ann | {"messages": []}


def test_an_email_another_customer_has_is_a_conflict(make_ctx, api_for):
    api = api_for(make_ctx())
    ann = api.ok("POST", "/customers", ANN, status=201)
    api.ok("POST", "/customers", {"email": "bob@example.org", "external_id": "B-1"}, status=201)

    taken = api.request("PATCH", f"/customers/{ann['id']}", 409,
                        json={"email": "BOB@example.org"}).json()["error"]
    also = api.request("PATCH", f"/customers/{ann['id']}", 409, json={"external_id": "B-1"})

    assert taken["code"] == "customer_exists" and "bob@example.org" in taken["message"]
    assert also.json()["error"]["code"] == "customer_exists"
    assert api.request("PATCH", "/customers/999999", 404, json={}).json()["error"]["code"] == \
        "customer_not_found"


def test_subscribing_again_lifts_the_suppression_of_the_address(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    world = draft_mailing(api, numbered(2))
    send(api, ctx, world["mailing"]["id"])
    first = world["ids"][0]
    with ctx.engine.connect() as conn:
        message_id = conn.execute(sa.select(messages.c.id).where(
            messages.c.customer_id == first)).scalar_one()
    api.ok("POST", "/events", {"type": "bounce", "message_id": message_id, "hard": True})
    assert api.ok("GET", f"/customers/{first}")["email_status"] == "bounced"

    api.ok("PATCH", f"/customers/{first}", {"email_status": "subscribed"})

    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(suppressions.c.address)).scalars().all() == []
    copy = api.ok("POST", f"/mailings/{world['mailing']['id']}/copy", status=201)
    send(api, ctx, copy["id"])
    assert api.ok("GET", f"/mailings/{copy['id']}")["progress"]["sent"] == 2


# -- DELETE --------------------------------------------------------------------------------


def test_delete_removes_the_customer_and_keeps_what_was_sent(make_ctx, api_for, audited):
    ctx = make_ctx()
    api = api_for(ctx)
    world = draft_mailing(api, numbered(2))
    send(api, ctx, world["mailing"]["id"])
    gone = world["ids"][0]

    response = api.request("DELETE", f"/customers/{gone}", 204)

    assert response.content == b""
    assert api.get(f"/customers/{gone}", expect=404).json()["error"]["code"] == "customer_not_found"
    assert api.ok("GET", "/customers?email=c000@example.org")["customers"] == []
    assert api.ok("GET", f"/mailings/{world['mailing']['id']}/stats")["sent"] == 2
    api.request("DELETE", f"/customers/{gone}", 404)
    assert ("TIDINGS_ADMIN_TOKEN", "customer.delete", f"customer {gone}") in audited


def test_a_customer_deleted_while_a_mailing_waits_for_them_does_not_hold_it_up(make_ctx, api_for):
    ctx = make_ctx(package_size=2)
    api = api_for(ctx)
    world = draft_mailing(api, numbered(5))
    mailing = world["mailing"]["id"]
    api.ok("POST", f"/mailings/{mailing}/send")  # frozen and queued; no worker yet

    api.request("DELETE", f"/customers/{world['ids'][1]}", 204)  # in the first package
    api.request("POST", f"/customers/{world['ids'][4]}/erase", 200)  # in the last one
    assert api.ok("GET", f"/mailings/{mailing}")["progress"]["total"] == 5
    make_worker(ctx).run_until_idle()

    done = api.ok("GET", f"/mailings/{mailing}")
    assert done["status"] == "sent"
    assert {k: done["progress"][k] for k in ("total", "sent", "skipped", "queued")} == \
        {"total": 5, "sent": 3, "skipped": 2, "queued": 0}
    with ctx.engine.connect() as conn:
        reasons = conn.execute(sa.select(messages.c.skip_reason).where(
            messages.c.status == "skipped").order_by(messages.c.id)).scalars().all()
    assert reasons == ["deleted", "erased"]


# -- erase ---------------------------------------------------------------------------------


def test_erase_leaves_no_personal_data_and_the_statistics_as_they_were(make_ctx, api_for,
                                                                      smtp_server, audited):
    ctx = make_ctx(smtp_url=smtp_server.url)
    api = api_for(ctx)
    world = draft_mailing(api, [], extra=[ANN, {"email": "bob@example.org"}])
    mailing = world["mailing"]["id"]
    send(api, ctx, mailing)
    ann_id = world["ids"][0]
    links = links_of(mail_to(smtp_server, ANN["email"], mailing))
    visit(api, links.pixel)
    visit(api, links.clicks[0])
    api.ok("POST", "/orders", {"external_id": "A-1", "customer_email": ANN["email"],
                               "total": "42.50", "created_at": ctx.now().isoformat()}, status=201)
    api.ok("POST", "/events", {"type": "delivered", "message_id": message_of(ctx, ann_id)})
    before = stats(api, mailing)
    assert (before["opened"], before["clicked"], before["orders"]) == (1, 1, 1)

    erased = api.ok("POST", f"/customers/{ann_id}/erase")

    assert erased == {"id": ann_id, "erased": True, "suppressed": []}
    assert stats(api, mailing) == before
    assert api.ok("GET", f"/mailings/{mailing}")["progress"]["sent"] == 2
    api.get(f"/customers/{ann_id}", expect=404)
    assert api.ok("GET", f"/customers?email={ANN['email']}")["customers"] == []
    assert api.ok("GET", "/customers?q=annabelle")["customers"] == []
    text = everything(ctx)
    for personal in (ANN["email"], "annabelle", "Annabelle", "Quixote", ANN["phone"], "Tartu"):
        assert personal not in text
    with ctx.engine.connect() as conn:
        ids = {conn.execute(sa.select(messages.c.customer_id).where(
            messages.c.address.is_(None))).scalar_one(),
            conn.execute(sa.select(orders.c.customer_id)).scalar_one()}
        assert len(ids) == 1 and ids.pop() < 0  # one pseudonym, no customer's id
    assert audited[-1] == ("TIDINGS_ADMIN_TOKEN", "customer.erase", f"customer {ann_id}")
    again = api.ok("POST", "/customers", {"email": ANN["email"]}, status=201)
    assert again["id"] != ann_id and again["email_status"] == "subscribed"


def message_of(ctx: Any, customer_id: int) -> int:
    with ctx.engine.connect() as conn:
        return int(conn.execute(sa.select(messages.c.id).where(
            messages.c.customer_id == customer_id)).scalar_one())


def test_an_erased_customer_who_had_unsubscribed_stays_unsubscribed_if_added_again(
        make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    bob = api.ok("POST", "/customers", {"email": "bob@example.org", "phone": "+37255500001",
                                        "email_status": "unsubscribed"}, status=201)

    erased = api.ok("POST", f"/customers/{bob['id']}/erase")

    assert erased["suppressed"] == ["email"]
    with ctx.engine.connect() as conn:
        (digest,) = conn.execute(sa.select(erased_contacts.c.digest)).scalars().all()
    assert len(digest) == 64 and "bob" not in everything(ctx)
    result = api.request("POST", "/customers/import", 200, content=b"email,phone\n"
                         b"BOB@example.org,+372 555 00001\n",
                         headers={"Content-Type": "text/csv"}).json()
    assert result["created"] == 1
    back = api.ok("GET", "/customers?email=bob@example.org")["customers"][0]
    assert (back["email_status"], back["sms_status"]) == ("unsubscribed", "subscribed")
    resubscribed = api.ok("PATCH", f"/customers/{back['id']}", {"email_status": "subscribed"})
    assert resubscribed["email_status"] == "subscribed"
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(erased_contacts)).scalar_one() == 0


def test_erasing_keeps_a_bounced_address_suppressed_as_a_hash(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    world = draft_mailing(api, numbered(1))
    send(api, ctx, world["mailing"]["id"])
    cid = world["ids"][0]
    api.ok("POST", "/events", {"type": "bounce", "message_id": message_of(ctx, cid), "hard": True})

    assert api.ok("POST", f"/customers/{cid}/erase")["suppressed"] == ["email"]
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(suppressions)).all() == []
    assert "c000@example.org" not in everything(ctx)
    back = api.ok("POST", "/customers", {"email": "c000@example.org"}, status=201)
    assert back["email_status"] == "bounced"
    api.post(f"/customers/{cid}/erase", expect=404)


def test_the_totals_of_an_order_stay_exact_after_erasure(make_ctx, api_for):
    ctx = make_ctx()
    api = api_for(ctx)
    ann = api.ok("POST", "/customers", ANN, status=201)
    for n, total in enumerate(("0.10", "0.20")):
        api.ok("POST", "/orders", {"external_id": f"O-{n}", "customer_id": ann["id"],
                                   "total": total, "created_at": "2030-01-01T10:00:00+00:00"},
               status=201)
    api.ok("POST", f"/customers/{ann['id']}/erase")
    with ctx.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.sum(orders.c.total))).scalar_one() == Decimal("0.30")


def test_a_new_customer_never_takes_the_id_of_a_deleted_one(make_ctx, api_for):
    """Messages and orders keep a deleted customer's id; a newcomer must not inherit them."""
    api = api_for(make_ctx())
    newest = api.ok("POST", "/customers", {"email": "a@example.org"}, status=201)
    api.request("DELETE", f"/customers/{newest['id']}", 204)

    assert api.ok("POST", "/customers", {"email": "b@example.org"}, status=201)["id"] > newest["id"]
