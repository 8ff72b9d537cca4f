"""Sending domains over the HTTP API: records to publish, verification against a real
DNS server on loopback, DKIM signatures on delivered mail, and the domain's health."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import dkim
import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tests.dnsserver import LocalDns
from tidings.services.sending import make_worker
from tidings.store.tables import domains, messages
from tidings.transports.dkim import decrypt_secret, public_key_b64
from tidings.transports.dns_check import lookup_txt

DOMAIN = "shop.example.com"
FROM = f"news@{DOMAIN}"
HTML = '<p>Hello</p><p><a href="{{ unsubscribe_url }}">Unsubscribe</a></p>'


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    with LocalDns() as server:
        yield server


def publish(dns: LocalDns, domain: dict) -> None:
    for record in domain["records"]:
        dns.set_txt(record["name"], record["value"])


def by_purpose(items: list[dict]) -> dict[str, dict]:
    return {item["purpose"]: item for item in items}


def test_adding_a_domain_returns_the_records_to_publish_and_keeps_the_key_encrypted(make_ctx, api_for, dns):
    ctx = make_ctx(dns_server=dns.address)
    api = api_for(ctx)

    response = api.post("/domains", {"domain": "Shop.Example.COM."}, expect=201)
    created = response.json()

    assert created["domain"] == DOMAIN and created["verified"] is False
    assert re.fullmatch(r"tidings\d{6}", created["selector"])
    records = by_purpose(created["records"])
    assert list(by_purpose(created["records"])) == ["spf", "dkim", "dmarc"]
    assert records["spf"] | {"note": ""} == {
        "type": "TXT",
        "name": DOMAIN,
        "value": "v=spf1 a mx ~all",
        "purpose": "spf",
        "note": "",
        "ok": None,
        "problem": None,
    }
    assert records["dkim"]["name"] == f"{created['selector']}._domainkey.{DOMAIN}"
    assert records["dkim"]["value"].startswith("v=DKIM1; k=rsa; p=")
    assert records["dmarc"]["name"] == f"_dmarc.{DOMAIN}"
    assert records["dmarc"]["value"] == f"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}; adkim=r; aspf=r"
    assert created["checks"] is None
    assert "PRIVATE" not in response.text and "private" not in response.text

    with ctx.engine.connect() as conn:
        stored = conn.execute(sa.select(domains.c.dkim_private_key)).scalar_one()
    assert "PRIVATE" not in stored
    pem = decrypt_secret(ctx.secret, stored)
    assert records["dkim"]["value"] == f"v=DKIM1; k=rsa; p={public_key_b64(pem)}"

    assert api.ok("GET", f"/domains/{created['id']}") == created
    assert api.ok("GET", "/domains") == {"domains": [created]}


def test_an_existing_spf_record_is_merged_not_doubled(make_ctx, api_for, dns):
    dns.set_txt(DOMAIN, "v=spf1 include:_spf.mailhost.example -all", "google-site-verification=x")
    ctx = make_ctx(dns_server=dns.address, spf_include="203.0.113.7")
    api = api_for(ctx)

    created = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)

    spf = by_purpose(created["records"])["spf"]
    assert spf["value"] == "v=spf1 include:_spf.mailhost.example ip4:203.0.113.7 -all"
    assert "Replace your current SPF record" in spf["note"]


def test_a_duplicate_or_malformed_domain_is_refused(make_ctx, api_for, dns):
    api = api_for(make_ctx(dns_server=dns.address))
    api.post("/domains", {"domain": DOMAIN}, expect=201)

    duplicate = api.post("/domains", {"domain": "SHOP.example.com"}, expect=409).json()["error"]
    assert duplicate["code"] == "domain_exists" and DOMAIN in duplicate["message"]
    for bad in ("news@shop.example.com", "localhost", "203.0.113.7", "", "under_score.example"):
        error = api.post("/domains", {"domain": bad}, expect=422).json()["error"]
        assert error["field"] == "domain", bad
    assert (
        api.post("/domains", {"domain": "b.example", "key": 1}, expect=422).json()["error"]["field"] == "key"
    )
    missing = api.get("/domains/999", expect=404).json()["error"]
    assert missing == {"code": "domain_not_found", "message": "There is no sending domain 999."}
    api.post("/domains/999/verify", expect=404)
    assert len(api.ok("GET", "/domains")["domains"]) == 1


def test_a_deleted_domain_can_be_added_again_with_a_new_key(make_ctx, api_for, dns):
    api = api_for(make_ctx(dns_server=dns.address))
    first = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)

    api.request("DELETE", f"/domains/{first['id']}", 204)

    api.get(f"/domains/{first['id']}", expect=404)
    api.request("DELETE", f"/domains/{first['id']}", 404)
    again = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)
    assert by_purpose(again["records"])["dkim"]["value"] != by_purpose(first["records"])["dkim"]["value"]


def test_records_verify_against_local_dns_only_once_they_are_published(make_ctx, api_for, dns):
    api = api_for(make_ctx(dns_server=dns.address))
    created = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)
    did = created["id"]

    before = api.ok("POST", f"/domains/{did}/verify")
    assert before["verified"] is False and before["verified_at"] is None
    assert [c["ok"] for c in before["checks"]] == [False, False, False]
    checks = by_purpose(before["checks"])
    assert "No SPF record found" in checks["spf"]["problem"]
    assert checks["dkim"]["name"] in checks["dkim"]["problem"]
    assert f"_dmarc.{DOMAIN}" in checks["dmarc"]["problem"]
    assert [r["ok"] for r in before["records"]] == [False, False, False]

    publish(dns, created)
    dns.set_txt(by_purpose(created["records"])["dkim"]["name"], "v=DKIM1; k=rsa; p=MIIBIjANwrong")
    wrong_key = api.ok("POST", f"/domains/{did}/verify")
    assert wrong_key["verified"] is False
    assert [c["purpose"] for c in wrong_key["checks"] if not c["ok"]] == ["dkim"]

    publish(dns, created)
    after = api.ok("POST", f"/domains/{did}/verify")
    assert after["verified"] is True and after["verified_at"] is not None
    assert [(c["ok"], c["problem"]) for c in after["checks"]] == [(True, None)] * 3
    assert api.ok("GET", f"/domains/{did}")["verified"] is True

    dns.remove(f"_dmarc.{DOMAIN}")
    lost = api.ok("POST", f"/domains/{did}/verify")
    assert lost["verified"] is False
    assert [c["purpose"] for c in lost["checks"] if not c["ok"]] == ["dmarc"]


def test_a_dns_server_that_fails_is_named_in_the_checks(make_ctx, api_for, dns):
    api = api_for(make_ctx(dns_server=dns.address))
    created = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)
    publish(dns, created)
    dns.fail(DOMAIN)

    checked = api.ok("POST", f"/domains/{created['id']}/verify")

    assert checked["verified"] is False
    spf = by_purpose(checked["checks"])["spf"]
    assert dns.address in spf["problem"] and "SERVFAIL" in spf["problem"]


def test_an_unverified_domain_cannot_send_and_the_error_says_what_to_publish(
    make_ctx, api_for, dns, smtp_server
):
    ctx = make_ctx(dns_server=dns.address, smtp_url=smtp_server.url, require_verified_domain=True)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(5), html=HTML)["mailing"]["id"]

    unknown = api.post(f"/mailings/{mid}/send", expect=409).json()["error"]
    assert unknown["code"] == "domain_not_verified"
    assert DOMAIN in unknown["message"] and "POST /api/v1/domains" in unknown["message"]
    assert "SPF, DKIM and DMARC" in unknown["message"]

    api.post("/domains", {"domain": DOMAIN}, expect=201)
    unverified = api.post(f"/mailings/{mid}/send", expect=409).json()["error"]
    assert unverified["code"] == "domain_not_verified"
    assert f"{DOMAIN} is not verified yet" in unverified["message"]
    assert "Domains page" in unverified["message"]
    assert "GET /api/v1/domains" in unverified["message"]
    assert "SPF, DKIM and DMARC" in unverified["message"]
    later = (ctx.now() + timedelta(hours=1)).isoformat()
    scheduled = api.post(f"/mailings/{mid}/schedule", {"send_at": later}, expect=409)
    assert scheduled.json()["error"]["code"] == "domain_not_verified"

    make_worker(ctx).run_until_idle()
    assert smtp_server.messages == []
    mailing = api.ok("GET", f"/mailings/{mid}")
    assert mailing["status"] == "draft" and mailing["progress"]["total"] == 0


def test_mail_from_a_verified_domain_carries_a_dkim_signature_dkimpy_verifies(
    make_ctx, api_for, dns, smtp_server
):
    ctx = make_ctx(dns_server=dns.address, smtp_url=smtp_server.url, require_verified_domain=True)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(6), html=HTML)["mailing"]["id"]
    created = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)
    publish(dns, created)
    assert api.ok("POST", f"/domains/{created['id']}/verify")["verified"] is True

    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()

    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
    assert len(smtp_server.messages) == 6

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        found = lookup_txt(name.decode().rstrip("."), server=dns.address)
        return found[0].encode() if found else b""

    for received in smtp_server.messages:
        assert received.data.startswith(b"DKIM-Signature: ")
        assert dkim.verify(received.data, dnsfunc=dnsfunc), received.rcpt
        signature = re.sub(r"\s+", "", str(received.message["DKIM-Signature"]))
        tags = dict(part.split("=", 1) for part in signature.split(";") if part)
        assert tags["d"] == DOMAIN and tags["s"] == created["selector"]
        signed = tags["h"].split(":")
        assert {"from", "list-unsubscribe", "list-unsubscribe-post", "message-id"} <= set(signed)
        assert received.mail_from.endswith(f"@{DOMAIN}")  # DMARC: the return path aligns too

    tampered = smtp_server.messages[0].data.replace(b"Subject: Hi", b"Subject: Oh")
    assert not dkim.verify(tampered, dnsfunc=dnsfunc)


def test_mail_from_a_domain_that_is_not_verified_goes_out_unsigned(make_ctx, api_for, dns, smtp_server):
    ctx = make_ctx(dns_server=dns.address, smtp_url=smtp_server.url, require_verified_domain=False)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(2), html=HTML)["mailing"]["id"]
    api.post("/domains", {"domain": DOMAIN}, expect=201)

    api.ok("POST", f"/mailings/{mid}/send")
    make_worker(ctx).run_until_idle()

    assert [m.message["DKIM-Signature"] for m in smtp_server.messages] == [None, None]


def test_domain_health_gives_rates_dns_status_and_alignment(make_ctx, api_for, dns):
    ctx = make_ctx(dns_server=dns.address, max_complaint_rate=0.05)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(10), html=HTML)["mailing"]["id"]
    other = draft_mailing(api, numbered(0), html=HTML, from_email="news@elsewhere.example")["mailing"]["id"]
    created = api.ok("POST", "/domains", {"domain": DOMAIN}, status=201)
    did = created["id"]

    fresh = api.ok("GET", f"/domains/{did}/health")
    assert fresh["sent"] == 0 and fresh["bounce_rate"] is None and fresh["complaint_rate"] is None
    assert fresh["ok"] is False and fresh["dns"]["verified"] is False
    assert fresh["one_click_unsubscribe"]["ok"] is False
    assert fresh["dmarc_alignment"] | {"detail": ""} == {
        "ok": False,
        "dkim_aligned": False,
        "spf_aligned": True,
        "dmarc_record": None,
        "detail": "",
    }

    publish(dns, created)
    api.ok("POST", f"/domains/{did}/verify")
    for m in (mid, other):
        api.ok("POST", f"/mailings/{m}/send")
    make_worker(ctx).run_until_idle()
    message_ids = [r["id"] for r in _messages(ctx, mid)]
    api.ok("POST", "/events", {"type": "bounce", "message_id": message_ids[0], "hard": True})
    api.ok("POST", "/events", {"type": "complaint", "message_id": message_ids[1]})
    for message_id in message_ids[2:5]:
        api.ok("POST", "/events", {"type": "delivered", "message_id": message_id})

    health = api.ok("GET", f"/domains/{did}/health")

    assert {
        k: health[k]
        for k in (
            "mailings",
            "sent",
            "failed",
            "delivered",
            "hard_bounced",
            "soft_bounced",
            "complained",
            "bounce_rate",
            "complaint_rate",
        )
    } == {
        "mailings": 1,
        "sent": 10,
        "failed": 0,
        "delivered": 3,
        "hard_bounced": 1,
        "soft_bounced": 0,
        "complained": 1,
        "bounce_rate": 0.1,
        "complaint_rate": 0.1,
    }
    assert health["window_days"] == 30 and health["limits"]["max_complaint_rate"] == 0.05
    assert health["dns"]["verified"] is True and len(health["dns"]["checks"]) == 3
    assert health["one_click_unsubscribe"]["ok"] is True
    assert health["dmarc_alignment"]["ok"] is True and health["dmarc_alignment"]["dmarc_record"] is True
    assert health["ok"] is False
    assert [p for p in health["problems"] if "complained" in p] == [
        "10.00% of the last 30 days' recipients complained of spam, above the limit of 5.00%."
    ]
    assert health["problems"][0].startswith("10.0% of the last 30 days' messages bounced")
    api.get(f"/domains/{did}/health?days=0", expect=422)


def _messages(ctx, mailing_id: int) -> list[dict]:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        rows = conn.execute(
            sa.select(messages).where(messages.c.mailing_id == mailing_id).order_by(messages.c.id)
        )
        return [dict(r._mapping) for r in rows]
