from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from tests.dnsserver import LocalDns
from tidings.domain.domains import RecordCheck, records_to_publish
from tidings.errors import InvalidInput
from tidings.transports.dkim import generate_keypair
from tidings.transports.dns_check import DnsLookupFailed, lookup_txt, parse_server, verify_domain

DOMAIN = "shop.example"
SELECTOR = "tidings1"
SENDER_IP = "203.0.113.7"


@pytest.fixture
def dns() -> Iterator[LocalDns]:
    with LocalDns() as server:
        yield server


@pytest.fixture(scope="module")
def public_key() -> str:
    return generate_keypair()[1]


def verify(dns: LocalDns, public_key: str) -> list[RecordCheck]:
    return verify_domain(
        domain=DOMAIN,
        selector=SELECTOR,
        public_key_b64=public_key,
        server=dns.address,
        include=SENDER_IP,
    )


def publish(dns: LocalDns, public_key: str, *, existing_spf: str | None = None) -> None:
    for record in records_to_publish(
        domain=DOMAIN,
        selector=SELECTOR,
        public_key_b64=public_key,
        existing_spf=existing_spf,
        include=SENDER_IP,
    ):
        dns.set_txt(record.name, record.value)


# -- lookups -------------------------------------------------------------------------------


def test_lookup_txt_returns_every_record_with_its_strings_joined(dns: LocalDns) -> None:
    long_value = "v=DKIM1; k=rsa; p=" + "A" * 400
    dns.set_txt(DOMAIN, "v=spf1 mx ~all", "google-site-verification=abc")
    dns.set_txt(f"{SELECTOR}._domainkey.{DOMAIN}", long_value)

    assert lookup_txt(DOMAIN, server=dns.address) == [
        "v=spf1 mx ~all",
        "google-site-verification=abc",
    ]
    assert lookup_txt(f"{SELECTOR}._domainkey.{DOMAIN}.", server=dns.address) == [long_value]


def test_lookup_txt_of_a_missing_name_or_type_is_empty(dns: LocalDns) -> None:
    dns.set_a(DOMAIN, "203.0.113.7")
    dns.set_txt(f"{SELECTOR}._domainkey.{DOMAIN}", "v=DKIM1; p=x")

    assert lookup_txt("nothing.shop.example", server=dns.address) == []  # NXDOMAIN
    assert lookup_txt(DOMAIN, server=dns.address) == []  # the name exists, without TXT
    assert lookup_txt(f"_domainkey.{DOMAIN}", server=dns.address) == []  # empty non-terminal


def test_lookup_txt_sees_a_change_at_once(dns: LocalDns) -> None:
    assert lookup_txt(DOMAIN, server=dns.address) == []
    dns.set_txt(DOMAIN, "v=spf1 mx ~all")
    assert lookup_txt(DOMAIN, server=dns.address) == ["v=spf1 mx ~all"]


def test_a_server_failure_raises_dns_lookup_failed(dns: LocalDns) -> None:
    dns.fail(DOMAIN)
    with pytest.raises(DnsLookupFailed) as caught:
        lookup_txt(DOMAIN, server=dns.address)
    assert caught.value.message == (
        f"The DNS server {dns.address} refused or failed to answer (SERVFAIL or REFUSED) "
        f"when looking up {DOMAIN}."
    )


def test_a_silent_server_times_out_quickly() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(DnsLookupFailed) as caught:
            lookup_txt(DOMAIN, server=address, timeout=0.3)
    assert time.monotonic() - started < 2
    assert "did not answer within 0.3 seconds" in caught.value.message


@pytest.mark.parametrize(
    ("server", "parsed"),
    [
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("::1", ("::1", 53)),
    ],
)
def test_parse_server_reads_host_and_port(server: str, parsed: tuple[str, int]) -> None:
    assert parse_server(server) == parsed


@pytest.mark.parametrize("server", ["dns.example:53", "127.0.0.1:0", "127.0.0.1:dns", ""])
def test_parse_server_refuses_what_is_not_an_ip_and_port(server: str) -> None:
    with pytest.raises(InvalidInput):
        parse_server(server)


# -- verifying a domain --------------------------------------------------------------------


def test_before_publishing_every_record_fails_with_what_to_publish(
    dns: LocalDns, public_key: str
) -> None:
    checks = verify(dns, public_key)

    assert [(c.purpose, c.name, c.ok) for c in checks] == [
        ("spf", DOMAIN, False),
        ("dkim", f"{SELECTOR}._domainkey.{DOMAIN}", False),
        ("dmarc", f"_dmarc.{DOMAIN}", False),
    ]
    assert [c.problem for c in checks] == [
        f'No SPF record found at {DOMAIN}: publish the TXT record "v=spf1 ip4:{SENDER_IP} ~all".',
        f"No DKIM key found at {SELECTOR}._domainkey.{DOMAIN}: publish the TXT record "
        f'"v=DKIM1; k=rsa; p={public_key}".',
        f"No DMARC record found at _dmarc.{DOMAIN}: publish the TXT record "
        f'"v=DMARC1; p=none; rua=mailto:dmarc@{DOMAIN}; adkim=r; aspf=r".',
    ]


def test_after_publishing_every_record_passes(dns: LocalDns, public_key: str) -> None:
    publish(dns, public_key)

    assert verify(dns, public_key) == [
        RecordCheck(type="TXT", name=DOMAIN, ok=True, problem=None, purpose="spf"),
        RecordCheck(
            type="TXT",
            name=f"{SELECTOR}._domainkey.{DOMAIN}",
            ok=True,
            problem=None,
            purpose="dkim",
        ),
        RecordCheck(type="TXT", name=f"_dmarc.{DOMAIN}", ok=True, problem=None, purpose="dmarc"),
    ]


def test_a_wrong_dkim_key_is_reported(dns: LocalDns, public_key: str) -> None:
    publish(dns, public_key)
    other_key = generate_keypair()[1]
    dns.set_txt(f"{SELECTOR}._domainkey.{DOMAIN}", f"v=DKIM1; k=rsa; p={other_key}")

    checks = verify(dns, public_key)

    assert [c.ok for c in checks] == [True, False, True]
    assert checks[1].problem == (
        f"The DKIM key at {SELECTOR}._domainkey.{DOMAIN} is not this domain's Tidings key "
        f'(an old or another sender\'s key?): publish "v=DKIM1; k=rsa; p={public_key}".'
    )


def test_an_existing_spf_record_must_be_replaced_by_the_merged_one(
    dns: LocalDns, public_key: str
) -> None:
    publish(dns, public_key)
    dns.set_txt(DOMAIN, "v=spf1 include:_spf.mailhost.example -all", "other=txt")

    before = verify(dns, public_key)[0]
    dns.set_txt(DOMAIN, f"v=spf1 include:_spf.mailhost.example ip4:{SENDER_IP} -all", "other=txt")
    after = verify(dns, public_key)[0]

    assert before.problem == (
        f"The SPF record at {DOMAIN} does not authorize Tidings (missing ip4:{SENDER_IP}): "
        f'replace it with "v=spf1 include:_spf.mailhost.example ip4:{SENDER_IP} -all".'
    )
    assert after.ok


def test_two_spf_records_are_reported(dns: LocalDns, public_key: str) -> None:
    publish(dns, public_key)
    dns.add_txt(DOMAIN, "v=spf1 mx -all")

    spf = verify(dns, public_key)[0]

    assert not spf.ok and spf.problem is not None and "has 2 SPF records" in spf.problem


def test_a_failing_lookup_is_a_failed_check_not_an_exception(
    dns: LocalDns, public_key: str
) -> None:
    publish(dns, public_key)
    dns.fail(f"_dmarc.{DOMAIN}")

    checks = verify(dns, public_key)

    assert [c.ok for c in checks] == [True, True, False]
    assert checks[2].problem == (
        f"The DNS server {dns.address} refused or failed to answer (SERVFAIL or REFUSED) when "
        f"looking up _dmarc.{DOMAIN}. Check the DNS server setting and try again."
    )
