from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tidings.domain.tracking import (
    PURPOSES,
    bounce_address,
    click_signer,
    message_id_from_bounce_address,
    sign_click,
    sign_message_token,
    verify_click,
    verify_message_token,
)
from tidings.errors import InvalidInput

SECRET = b"s3cret-key-for-tests-0123456789ab"
OTHER_SECRET = b"another-key"
IDS = [0, 1, 255, 256, 987_654_321, 2**63 - 1, 2**64 - 1]
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
B32 = "abcdefghijklmnopqrstuvwxyz234567"


def altered(token: str, position: int, alphabet: str) -> list[str]:
    """Every token that differs from ``token`` in one character at ``position``."""
    return [token[:position] + c + token[position + 1 :] for c in alphabet if c != token[position]]


def assert_bad_token(call: object) -> None:
    with pytest.raises(InvalidInput) as caught:
        call()  # type: ignore[operator]
    assert caught.value.code == "bad_token"
    assert caught.value.status == 422


@pytest.mark.parametrize("purpose", sorted(PURPOSES))
@pytest.mark.parametrize("message_id", IDS)
def test_a_message_token_gives_back_its_message_id(purpose: str, message_id: int) -> None:
    token = sign_message_token(SECRET, message_id, purpose)

    assert verify_message_token(SECRET, token, purpose) == message_id


@pytest.mark.parametrize("purpose", ["open", "click", "unsub"])
def test_web_tokens_are_short_and_url_safe(purpose: str) -> None:
    token = sign_message_token(SECRET, 987_654_321, purpose)

    assert re.fullmatch(r"[A-Za-z0-9_-]{20,32}", token)


def test_a_bounce_token_is_lower_case_base32_and_fits_an_email_local_part() -> None:
    token = sign_message_token(SECRET, 2**64 - 1, "bounce")

    assert re.fullmatch(r"[a-z2-7]+", token)
    assert len(f"bounces+{token}") <= 64


def test_a_bounce_token_survives_an_mta_that_changes_letter_case() -> None:
    token = sign_message_token(SECRET, 42, "bounce")

    assert verify_message_token(SECRET, token.upper(), "bounce") == 42


@pytest.mark.parametrize("purpose", sorted(PURPOSES))
def test_changing_any_character_of_a_message_token_makes_it_invalid(purpose: str) -> None:
    token = sign_message_token(SECRET, 987_654_321, purpose)
    alphabet = B32 if purpose == "bounce" else B64URL

    for position in range(len(token)):
        for forged in altered(token, position, alphabet):
            assert_bad_token(lambda forged=forged: verify_message_token(SECRET, forged, purpose))


@pytest.mark.parametrize(
    "token_of",
    [
        lambda t: t[:-1],
        lambda t: t + "A",
        lambda t: "",
        lambda t: t + "=",
        lambda t: "é" + t[1:],
        lambda t: t[:5] + "." + t[6:],
    ],
)
def test_truncated_padded_or_foreign_tokens_are_invalid(token_of: object) -> None:
    token = token_of(sign_message_token(SECRET, 5, "open"))  # type: ignore[operator]

    assert_bad_token(lambda: verify_message_token(SECRET, token, "open"))


@pytest.mark.parametrize("made_for", sorted(PURPOSES - {"bounce"}))
@pytest.mark.parametrize("used_for", sorted(PURPOSES - {"bounce"}))
def test_a_token_for_one_purpose_fails_for_another(made_for: str, used_for: str) -> None:
    token = sign_message_token(SECRET, 7, made_for)

    if made_for == used_for:
        assert verify_message_token(SECRET, token, used_for) == 7
    else:
        assert_bad_token(lambda: verify_message_token(SECRET, token, used_for))


def test_a_bounce_token_read_as_base64_for_another_purpose_fails() -> None:
    token = sign_message_token(SECRET, 7, "bounce")

    for purpose in ("open", "click", "unsub"):
        assert_bad_token(lambda purpose=purpose: verify_message_token(SECRET, token, purpose))


def test_a_token_made_with_another_secret_fails() -> None:
    token = sign_message_token(OTHER_SECRET, 7, "unsub")

    assert_bad_token(lambda: verify_message_token(SECRET, token, "unsub"))


def test_an_unknown_purpose_is_a_programming_error() -> None:
    with pytest.raises(ValueError):
        sign_message_token(SECRET, 1, "download")


@pytest.mark.parametrize(
    "url",
    [
        "https://shop.example/p?a=1&b=2#frag",
        "http://xn--80ak6aa92e.example/путь?q=дa&utm_source=tidings",
        "https://shop.example/" + "x" * 2000,
    ],
)
def test_a_click_token_gives_back_the_message_and_the_url(url: str) -> None:
    token = sign_click(SECRET, 987_654_321, url)

    assert re.fullmatch(r"[A-Za-z0-9_-]+", token)
    assert verify_click(SECRET, token) == (987_654_321, url)


def test_changing_any_character_of_a_click_token_makes_it_invalid() -> None:
    token = sign_click(SECRET, 12, "https://shop.example/p?a=1")

    for position in range(len(token)):
        for forged in altered(token, position, B64URL):
            assert_bad_token(lambda forged=forged: verify_click(SECRET, forged))


def test_a_message_token_is_not_a_click_token_and_the_reverse() -> None:
    click = sign_click(SECRET, 12, "https://shop.example/")
    opened = sign_message_token(SECRET, 12, "open")

    assert_bad_token(lambda: verify_click(SECRET, opened))
    assert_bad_token(lambda: verify_message_token(SECRET, click, "click"))
    assert_bad_token(lambda: verify_click(OTHER_SECRET, click))


def test_the_verp_address_names_the_message_whatever_the_case() -> None:
    address = bounce_address(SECRET, 31337, domain="mail.shop.example")

    assert re.fullmatch(r"bounces\+[a-z2-7]+@mail\.shop\.example", address)
    assert message_id_from_bounce_address(SECRET, address) == 31337
    assert message_id_from_bounce_address(SECRET, address.upper()) == 31337
    assert_bad_token(lambda: message_id_from_bounce_address(SECRET, "bounces@mail.shop.example"))


@given(message_id=st.integers(min_value=0, max_value=2**64 - 1), url=st.text(max_size=300))
def test_any_message_and_url_round_trip_through_a_click_token(message_id: int, url: str) -> None:
    assert verify_click(SECRET, sign_click(SECRET, message_id, url)) == (message_id, url)


@given(
    message_id=st.integers(min_value=0, max_value=2**64 - 1),
    purpose=st.sampled_from(sorted(PURPOSES)),
)
def test_any_message_id_round_trips_for_any_purpose(message_id: int, purpose: str) -> None:
    token = sign_message_token(SECRET, message_id, purpose)

    assert verify_message_token(SECRET, token, purpose) == message_id


@given(message_id=st.integers(min_value=0, max_value=2**64 - 1), urls=st.lists(st.text(), max_size=4))
def test_a_click_signer_signs_exactly_as_sign_click(message_id: int, urls: list[str]) -> None:
    sign = click_signer(b"secret", message_id)

    for url in urls:
        assert sign(url) == sign_click(b"secret", message_id, url)
        assert verify_click(b"secret", sign(url)) == (message_id, url)
