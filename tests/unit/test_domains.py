from __future__ import annotations

import pytest

from tidings.domain.domains import (
    Record,
    RecordCheck,
    check_records,
    merge_spf,
    records_to_publish,
    spf_mechanisms,
    validate_domain,
    validate_selector,
)
from tidings.errors import InvalidInput

KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAv3" + "A" * 300 + "IDAQAB"
OTHER_KEY = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAw9" + "B" * 300 + "IDAQAB"


def expected(existing_spf: str | None = None, include: str | None = "203.0.113.7") -> list[Record]:
    return records_to_publish(
        domain="shop.example",
        selector="tidings1",
        public_key_b64=KEY,
        existing_spf=existing_spf,
        include=include,
    )


def published(overrides: dict[str, list[str]] | None = None) -> dict[str, list[str]]:
    records = {
        "shop.example": ["v=spf1 ip4:203.0.113.7 ~all", "google-site-verification=abc"],
        "tidings1._domainkey.shop.example": [f"v=DKIM1; k=rsa; p={KEY}"],
        "_dmarc.shop.example": ["v=DMARC1; p=none; rua=mailto:dmarc@shop.example"],
    }
    return records | (overrides or {})


def problems(found: dict[str, list[str]], records: list[Record] | None = None) -> dict[str, str]:
    return {
        c.purpose: c.problem or "" for c in check_records(records or expected(), found) if not c.ok
    }


# -- domain names --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "canonical"),
    [
        ("Shop.Example", "shop.example"),
        ("  shop.example.  ", "shop.example"),
        ("mail.shop.co.uk", "mail.shop.co.uk"),
        ("bücher.example", "xn--bcher-kva.example"),
        ("xn--bcher-kva.example", "xn--bcher-kva.example"),
        ("a-b.example", "a-b.example"),
    ],
)
def test_validate_domain_returns_the_lowercase_ascii_form(given: str, canonical: str) -> None:
    assert validate_domain(given) == canonical


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "localhost",
        "shop",
        "-shop.example",
        "shop-.example",
        "shop_mail.example",
        "*.shop.example",
        "shop..example",
        "192.0.2.1",
        "[2001:db8::1]",
        "news@shop.example",
        "shop.123",
        "a" * 64 + ".example",
        ("a" * 60 + ".") * 5 + "example",
        "https://shop.example",
    ],
)
def test_validate_domain_refuses_what_is_not_a_domain_name(bad: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        validate_domain(bad)
    assert caught.value.field == "domain"


def test_validate_selector_accepts_host_labels_only() -> None:
    assert validate_selector("Tidings2024") == "tidings2024"
    with pytest.raises(InvalidInput):
        validate_selector("bad selector")


# -- records to publish --------------------------------------------------------------------


def test_records_to_publish_gives_spf_dkim_and_dmarc_for_a_domain_without_spf() -> None:
    records = expected()

    assert [(r.type, r.name, r.value, r.purpose) for r in records] == [
        ("TXT", "shop.example", "v=spf1 ip4:203.0.113.7 ~all", "spf"),
        ("TXT", "tidings1._domainkey.shop.example", f"v=DKIM1; k=rsa; p={KEY}", "dkim"),
        (
            "TXT",
            "_dmarc.shop.example",
            "v=DMARC1; p=none; rua=mailto:dmarc@shop.example; adkim=r; aspf=r",
            "dmarc",
        ),
    ]
    assert all(r.note for r in records)


def test_records_to_publish_removes_whitespace_from_the_public_key() -> None:
    records = records_to_publish(
        domain="shop.example",
        selector="s1",
        public_key_b64="MIIB\nIjAN BgkqhkiG9w0B",
        existing_spf=None,
        include=None,
    )
    assert records[1].value == "v=DKIM1; k=rsa; p=MIIBIjANBgkqhkiG9w0B"


@pytest.mark.parametrize(
    ("include", "mechanisms"),
    [
        (None, ["a", "mx"]),
        ("", ["a", "mx"]),
        ("203.0.113.7", ["ip4:203.0.113.7"]),
        ("203.0.113.0/28", ["ip4:203.0.113.0/28"]),
        ("2001:db8::7", ["ip6:2001:db8::7"]),
        ("_spf.Relay.example", ["include:_spf.relay.example"]),
        (
            "ip4:203.0.113.7 include:_spf.relay.example",
            ["ip4:203.0.113.7", "include:_spf.relay.example"],
        ),
        ("+mx a:mail.shop.example", ["mx", "a:mail.shop.example"]),
        ("mall.example", ["include:mall.example"]),
    ],
)
def test_spf_mechanisms_turn_the_setting_into_mechanisms(
    include: str | None, mechanisms: list[str]
) -> None:
    assert spf_mechanisms(include) == mechanisms


@pytest.mark.parametrize(
    "bad", ["~all", "all", "-ip4:203.0.113.7", "redirect=_spf.example", "not a host!"]
)
def test_spf_mechanisms_refuse_terms_that_would_change_the_whole_record(bad: str) -> None:
    with pytest.raises(InvalidInput):
        spf_mechanisms(bad)


def test_an_existing_spf_record_is_merged_before_its_all_keeping_its_qualifier() -> None:
    records = expected(existing_spf="v=spf1 include:_spf.mailhost.example -all")

    spf = records[0]
    assert spf.value == "v=spf1 include:_spf.mailhost.example ip4:203.0.113.7 -all"
    assert "Replace your current SPF record" in spf.note


def test_merging_keeps_modifiers_last_and_adds_nothing_twice() -> None:
    assert (
        merge_spf("v=spf1 mx redirect=_spf.host.example", ["ip4:203.0.113.7"])
        == "v=spf1 mx ip4:203.0.113.7 redirect=_spf.host.example"
    )
    assert merge_spf("v=spf1 +ip4:203.0.113.7 ~all", ["ip4:203.0.113.7"]) == (
        "v=spf1 +ip4:203.0.113.7 ~all"
    )
    assert merge_spf("v=spf1 mx", ["a"]) == "v=spf1 mx a"
    once = merge_spf("v=spf1 mx ~all", ["ip4:203.0.113.7"])
    assert merge_spf(once, ["ip4:203.0.113.7"]) == once


def test_an_existing_record_that_is_not_spf_is_not_merged() -> None:
    assert expected(existing_spf="google-site-verification=abc")[0].value == (
        "v=spf1 ip4:203.0.113.7 ~all"
    )


# -- checking what DNS holds ---------------------------------------------------------------


def test_check_records_reports_every_record_missing_when_nothing_is_published() -> None:
    checks = check_records(expected(), {})

    assert [(c.purpose, c.ok) for c in checks] == [
        ("spf", False),
        ("dkim", False),
        ("dmarc", False),
    ]
    assert checks[0].problem == (
        'No SPF record found at shop.example: publish the TXT record "v=spf1 ip4:203.0.113.7 ~all".'
    )
    assert checks[1].problem is not None
    assert checks[1].problem.startswith("No DKIM key found at tidings1._domainkey.shop.example")
    assert checks[2].problem is not None
    assert checks[2].problem.startswith("No DMARC record found at _dmarc.shop.example")


def test_check_records_passes_when_all_records_are_published() -> None:
    assert check_records(expected(), published()) == [
        RecordCheck(type="TXT", name="shop.example", ok=True, problem=None, purpose="spf"),
        RecordCheck(
            type="TXT",
            name="tidings1._domainkey.shop.example",
            ok=True,
            problem=None,
            purpose="dkim",
        ),
        RecordCheck(type="TXT", name="_dmarc.shop.example", ok=True, problem=None, purpose="dmarc"),
    ]


def test_names_are_compared_without_case_or_trailing_dot() -> None:
    found = {name.upper() + ".": values for name, values in published().items()}
    assert all(c.ok for c in check_records(expected(), found))


def test_two_spf_records_are_reported() -> None:
    found = published({"shop.example": ["v=spf1 ip4:203.0.113.7 ~all", "v=spf1 mx -all"]})
    assert problems(found) == {
        "spf": (
            "shop.example has 2 SPF records, which receivers treat as an error; replace them "
            'with the single record "v=spf1 ip4:203.0.113.7 ~all".'
        )
    }


def test_an_spf_record_without_our_host_is_reported_with_the_merged_record() -> None:
    found = published({"shop.example": ["v=spf1 include:_spf.mailhost.example -all"]})
    records = expected(existing_spf="v=spf1 include:_spf.mailhost.example -all")

    assert problems(found, records) == {
        "spf": (
            "The SPF record at shop.example does not authorize Tidings (missing "
            'ip4:203.0.113.7): replace it with "v=spf1 include:_spf.mailhost.example '
            'ip4:203.0.113.7 -all".'
        )
    }


def test_an_spf_mechanism_after_all_is_reported() -> None:
    found = published({"shop.example": ["v=spf1 -all ip4:203.0.113.7"]})
    assert "after 'all'" in problems(found)["spf"]


def test_an_spf_record_that_lets_anyone_send_is_reported() -> None:
    found = published({"shop.example": ["v=spf1 ip4:203.0.113.7 +all"]})
    assert "'+all'" in problems(found)["spf"]


def test_a_wrong_dkim_key_is_reported() -> None:
    found = published({"tidings1._domainkey.shop.example": [f"v=DKIM1; k=rsa; p={OTHER_KEY}"]})
    assert problems(found) == {
        "dkim": (
            "The DKIM key at tidings1._domainkey.shop.example is not this domain's Tidings key "
            f'(an old or another sender\'s key?): publish "v=DKIM1; k=rsa; p={KEY}".'
        )
    }


def test_a_dkim_key_cut_at_255_characters_is_reported_as_truncated() -> None:
    found = published({"tidings1._domainkey.shop.example": [f"v=DKIM1; k=rsa; p={KEY}"[:255]]})
    assert "cut short" in problems(found)["dkim"]


def test_a_dkim_key_split_by_spaces_still_matches() -> None:
    spaced = f"v=DKIM1; k=rsa; p={KEY[:100]} {KEY[100:]}"
    found = published({"tidings1._domainkey.shop.example": [spaced]})
    assert problems(found) == {}


@pytest.mark.parametrize(
    ("record", "words"),
    [
        ("v=DKIM1; k=rsa; p=", "empty key"),
        (f"v=DKIM1; k=ed25519; p={KEY}", "ed25519 key"),
        (f"v=DKIM2; p={KEY}", "v=DKIM2"),
    ],
)
def test_dkim_records_that_cannot_verify_are_reported(record: str, words: str) -> None:
    found = published({"tidings1._domainkey.shop.example": [record]})
    assert words in problems(found)["dkim"]


def test_two_dkim_records_at_one_selector_are_reported() -> None:
    found = published(
        {"tidings1._domainkey.shop.example": [f"v=DKIM1; p={KEY}", f"v=DKIM1; p={OTHER_KEY}"]}
    )
    assert "has 2 DKIM key records" in problems(found)["dkim"]


@pytest.mark.parametrize(
    ("records", "words"),
    [
        (["v=DMARC1; rua=mailto:d@shop.example"], "has no policy (p=)"),
        (["v=DMARC1; p=monitor"], "p=monitor"),
        (["v=DMARC1; p=none", "v=DMARC1; p=reject"], "has 2 DMARC records"),
        (["p=none; v=DMARC1"], "does not start with v=DMARC1"),
    ],
)
def test_dmarc_problems_are_reported(records: list[str], words: str) -> None:
    found = published({"_dmarc.shop.example": records})
    assert words in problems(found)["dmarc"]


@pytest.mark.parametrize("policy", ["none", "quarantine", "reject"])
def test_an_existing_dmarc_record_with_any_valid_policy_passes(policy: str) -> None:
    found = published({"_dmarc.shop.example": [f"v=DMARC1; p={policy}; sp=none; adkim=s"]})
    assert problems(found) == {}


def test_a_record_of_another_purpose_must_match_exactly() -> None:
    record = Record(type="TXT", name="shop.example", value="tidings-verify=1", purpose="other")
    assert check_records([record], {"shop.example": ["tidings-verify=1"]})[0].ok
    assert not check_records([record], {"shop.example": ["tidings-verify=2"]})[0].ok


def test_an_spf_record_that_already_authorizes_tidings_is_kept() -> None:
    spf = expected(existing_spf="v=spf1 ip4:203.0.113.7 include:_spf.mailhost.example -all")[0]
    assert spf.value == "v=spf1 ip4:203.0.113.7 include:_spf.mailhost.example -all"
    assert spf.note == "Your SPF record already authorizes Tidings; keep it as it is."
