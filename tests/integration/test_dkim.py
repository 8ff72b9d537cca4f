from __future__ import annotations

import re
import smtplib
import socket
from collections.abc import Iterator
from email.message import EmailMessage
from email.policy import SMTP

import dkim
import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.dnsserver import LocalDns
from tidings.errors import InvalidInput
from tidings.transports.dkim import (
    DkimSigner,
    UndecryptableSecret,
    decrypt_secret,
    encrypt_secret,
    generate_keypair,
    public_key_b64,
)
from tidings.transports.dns_check import lookup_txt

DOMAIN = "shop.example"
SELECTOR = "tidings1"


@pytest.fixture(scope="module")
def keypair() -> tuple[bytes, str]:
    return generate_keypair()


@pytest.fixture(scope="module")
def signer(keypair: tuple[bytes, str]) -> DkimSigner:
    return DkimSigner(DOMAIN, SELECTOR, keypair[0])


def dnsfunc_for(public_b64: str):  # type: ignore[no-untyped-def]
    record = f"v=DKIM1; k=rsa; p={public_b64}".encode("ascii")

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name == f"{SELECTOR}._domainkey.{DOMAIN}.".encode()
        return record

    return dnsfunc


def verifies(message: bytes, public_b64: str) -> bool:
    return bool(dkim.verify(message, dnsfunc=dnsfunc_for(public_b64)))


def tidings_message(body: str = "Dear Ada,\n\nour spring collection is here.\n") -> bytes:
    msg = EmailMessage(policy=SMTP)
    msg["From"] = "Example Shop <news@shop.example>"
    msg["To"] = "Ada Lovelace <ada@customer.example>"
    msg["Subject"] = "Our spring collection is here, Ada — 20% off"
    msg["Date"] = "Tue, 05 Mar 2024 09:30:00 +0000"
    msg["Message-ID"] = "<m42.c1001@shop.example>"
    msg["List-Unsubscribe"] = "<https://shop.example/u/abcdef>"
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["X-Tidings-Mailing"] = "42"
    msg["X-Unsigned"] = "not in the list"
    msg.set_content(body)
    msg.add_alternative(f"<html><body><p>{body}</p></body></html>", subtype="html")
    return msg.as_bytes()


def signature_tags(signed: bytes) -> dict[str, str]:
    header = re.match(rb"DKIM-Signature:(.*?)\r?\n(?![ \t])", signed, re.S)
    assert header is not None
    text = re.sub(r"\s+", "", header.group(1).decode())
    return dict(part.split("=", 1) for part in text.split(";") if part)


# -- signing -------------------------------------------------------------------------------


def test_dkimpy_accepts_the_signature_of_a_tidings_message(
    signer: DkimSigner, keypair: tuple[bytes, str]
) -> None:
    message = tidings_message()

    signed = signer.sign(message)

    assert signed.endswith(message)
    assert verifies(signed, keypair[1])


def test_the_signature_covers_the_listed_headers_present_and_oversigns_from(
    signer: DkimSigner,
) -> None:
    tags = signature_tags(signer.sign(tidings_message(), timestamp=1709631000))

    assert tags["h"].split(":") == [
        "from",
        "from",
        "to",
        "subject",
        "date",
        "message-id",
        "mime-version",
        "content-type",
        "list-unsubscribe",
        "list-unsubscribe-post",
        "x-tidings-mailing",
    ]
    assert {k: tags[k] for k in ("v", "a", "c", "d", "s", "t")} == {
        "v": "1",
        "a": "rsa-sha256",
        "c": "relaxed/relaxed",
        "d": DOMAIN,
        "s": SELECTOR,
        "t": "1709631000",
    }


def test_header_lines_of_the_signature_stay_short(signer: DkimSigner) -> None:
    header = signer.signature_header(tidings_message())
    assert max(len(line) for line in header.split(b"\r\n")) <= 100


def test_a_message_with_lf_line_endings_is_signed_as_it_will_travel(
    signer: DkimSigner, keypair: tuple[bytes, str]
) -> None:
    message = tidings_message().replace(b"\r\n", b"\n")

    signed = signer.sign(message)

    assert b"\r\n" not in signed
    assert verifies(signed, keypair[1])
    assert verifies(signed.replace(b"\n", b"\r\n"), keypair[1])


@pytest.mark.parametrize(
    "tamper",
    [
        lambda m: m.replace(b"spring collection is here.", b"spring collection is HERE."),
        lambda m: m.replace(b"Subject: Our", b"Subject: Your"),
        lambda m: m.replace(b"X-Tidings-Mailing: 42", b"X-Tidings-Mailing: 43"),
        lambda m: m.replace(b"From: Example", b"From: evil@attacker.example\r\nFrom: Example"),
    ],
    ids=["body", "subject", "mailing header", "added From"],
)
def test_a_changed_message_no_longer_verifies(
    signer: DkimSigner, keypair: tuple[bytes, str], tamper
) -> None:  # type: ignore[no-untyped-def]
    signed = signer.sign(tidings_message())
    assert verifies(tamper(signed), keypair[1]) is False


def test_whitespace_changes_allowed_by_relaxed_canonicalization_still_verify(
    signer: DkimSigner, keypair: tuple[bytes, str]
) -> None:
    signed = signer.sign(tidings_message())
    relaxed = signed.replace(b"Subject: Our", b"subject:   Our").replace(
        b"spring collection is here.", b"spring  collection\tis here.   "
    )
    assert verifies(relaxed + b"\r\n\r\n", keypair[1])


def test_an_unlisted_header_may_change_without_breaking_the_signature(
    signer: DkimSigner, keypair: tuple[bytes, str]
) -> None:
    signed = signer.sign(tidings_message())
    assert verifies(signed.replace(b"not in the list", b"changed on the way"), keypair[1])


def test_a_message_with_an_empty_body_verifies(
    signer: DkimSigner, keypair: tuple[bytes, str]
) -> None:
    for message in (b"From: a@shop.example\r\n\r\n", b"From: a@shop.example\r\n"):
        assert verifies(signer.sign(message), keypair[1])


_line = st.text(alphabet=st.sampled_from("ab \tZ.,:;=-<>"), max_size=40)


@settings(max_examples=60, deadline=None)
@given(
    subject=st.lists(_line, min_size=1, max_size=3),
    body=st.lists(_line, max_size=12),
    ending=st.sampled_from(["\r\n", "\n"]),
    extra_to=st.booleans(),
)
def test_any_message_verifies_with_dkimpy(
    signer: DkimSigner,
    keypair: tuple[bytes, str],
    subject: list[str],
    body: list[str],
    ending: str,
    extra_to: bool,
) -> None:
    folded_subject = (ending + "\t").join(s or "x" for s in subject)
    lines = [
        "From: Shop <news@shop.example>",
        "To: a@customer.example",
        *(["To: b@customer.example"] if extra_to else []),
        f"Subject: {folded_subject}",
        "",
        *body,
    ]
    message = ending.join(lines).encode() + ending.encode()

    assert verifies(signer.sign(message), keypair[1])


def test_a_message_without_from_is_refused(signer: DkimSigner) -> None:
    with pytest.raises(InvalidInput):
        signer.sign(b"To: a@customer.example\r\n\r\nhello\r\n")


def test_a_key_that_is_not_rsa_is_refused() -> None:
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    with pytest.raises(InvalidInput):
        DkimSigner(DOMAIN, SELECTOR, pem)
    with pytest.raises(InvalidInput):
        DkimSigner(DOMAIN, SELECTOR, b"not a key")


def test_the_signer_must_sign_from(keypair: tuple[bytes, str]) -> None:
    with pytest.raises(InvalidInput):
        DkimSigner(DOMAIN, SELECTOR, keypair[0], headers=("To", "Subject"))


# -- keys and their encryption -------------------------------------------------------------


def test_generate_keypair_makes_an_rsa_2048_key_and_its_dns_value(
    keypair: tuple[bytes, str],
) -> None:
    private_pem, public_b64 = keypair
    key = serialization.load_pem_private_key(private_pem, password=None)

    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    assert private_pem.startswith(b"-----BEGIN RSA PRIVATE KEY-----")
    assert public_key_b64(private_pem) == public_b64


def test_dkimpy_can_sign_with_the_generated_key_too(keypair: tuple[bytes, str]) -> None:
    message = tidings_message()
    header = dkim.sign(message, SELECTOR.encode(), DOMAIN.encode(), keypair[0])
    assert verifies(header + message, keypair[1])


def test_a_secret_encrypted_with_the_secret_key_decrypts_with_it(
    keypair: tuple[bytes, str],
) -> None:
    token = encrypt_secret(b"the tidings secret key", keypair[0])

    assert token.startswith("v1.")
    assert b"PRIVATE KEY" not in token.encode()
    assert decrypt_secret(b"the tidings secret key", token) == keypair[0]
    assert decrypt_secret("the tidings secret key", token) == keypair[0]


def test_encrypting_twice_gives_different_tokens() -> None:
    assert encrypt_secret(b"k", b"same") != encrypt_secret(b"k", b"same")


def test_a_secret_does_not_decrypt_with_another_key_or_when_altered() -> None:
    token = encrypt_secret(b"right key", b"private key bytes")
    altered = token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB")

    for key, value in [(b"wrong key", token), (b"right key", altered), (b"right key", "v0.xx")]:
        with pytest.raises(UndecryptableSecret):
            decrypt_secret(key, value)


def test_an_empty_secret_key_is_refused() -> None:
    with pytest.raises(InvalidInput):
        encrypt_secret(b"", b"x")


# -- over the network ----------------------------------------------------------------------


class _Sink:
    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
        self.messages.append(envelope.original_content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def smtp_sink() -> Iterator[tuple[_Sink, int]]:
    sink = _Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield sink, controller.port
    controller.stop()


def test_a_signed_message_sent_over_smtp_verifies_against_the_published_key(
    signer: DkimSigner, keypair: tuple[bytes, str], smtp_sink: tuple[_Sink, int]
) -> None:
    sink, port = smtp_sink
    with LocalDns() as dns:
        dns.set_txt(f"{SELECTOR}._domainkey.{DOMAIN}", f"v=DKIM1; k=rsa; p={keypair[1]}")

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            records = lookup_txt(name.decode(), server=dns.address)
            return records[0].encode() if records else b""

        with smtplib.SMTP("127.0.0.1", port) as client:
            client.sendmail(
                "bounces+k7q2m9x4@shop.example",
                ["ada@customer.example"],
                signer.sign(tidings_message()),
            )

        assert len(sink.messages) == 1
        assert dkim.verify(sink.messages[0], dnsfunc=dnsfunc)
        assert (f"{SELECTOR}._domainkey.{DOMAIN}", "TXT") in dns.queries
