"""DKIM keys, their encryption at rest, and a fast DKIM signer.

- :func:`generate_keypair` makes an RSA-2048 key: the private key as PEM
  (PKCS#1, which dkimpy also reads) and the public key as the base64 DER
  ``SubjectPublicKeyInfo`` that goes into the ``p=`` tag of the DNS record.
- :func:`encrypt_secret` / :func:`decrypt_secret` keep private keys encrypted
  in the database with AES-256-GCM under a key derived from the Tidings secret
  key by HKDF-SHA256. Tokens are ``v1.`` + urlsafe base64 of nonce and
  ciphertext; a changed secret key or an altered token raises
  :class:`UndecryptableSecret`.
- :class:`DkimSigner` signs with ``rsa-sha256`` and ``relaxed/relaxed``
  canonicalization (RFC 6376, section 3.4). It loads the key once and signs
  through OpenSSL (``cryptography``); canonicalization is done here with a few
  byte-level regular expressions. dkimpy's ``dkim.sign`` parses the PEM and
  computes RSA in pure Python on every call, which costs several milliseconds
  a message (see ``bench/dkim.py``). Signatures verify with ``dkim.verify``.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
import time
from collections.abc import Iterable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from tidings.errors import InvalidInput, TidingsError

#: Headers signed when present, in this order. ``From`` is also over-signed
#: (named once more than it occurs) so that no ``From`` can be added later.
DEFAULT_HEADERS: tuple[str, ...] = (
    "From",
    "To",
    "Cc",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "X-Tidings-Mailing",
)
OVERSIGNED: frozenset[bytes] = frozenset({b"from"})

_TOKEN_VERSION = "v1."
_HKDF_INFO = b"tidings secret encryption v1"
_NONCE_BYTES = 12

_EOL = re.compile(rb"\r?\n")
# Only what relaxed canonicalization changes: a tab, or two or more WSP characters.
_WSP_TO_SPACE = re.compile(rb"\t[ \t]*| [ \t]+")
_HEADER_NAME = re.compile(rb"^([\x21-\x39\x3b-\x7e]+)[ \t]*:")
_BODY_SPLIT = re.compile(rb"\r?\n\r?\n")


class UndecryptableSecret(TidingsError):
    """A stored secret cannot be decrypted: the secret key changed or the value was altered."""

    status = 500
    code = "undecryptable_secret"


def generate_keypair() -> tuple[bytes, str]:
    """A new RSA-2048 DKIM key: ``(private_pem, public_b64)``.

    ``private_pem`` is an unencrypted PKCS#1 PEM (encrypt it with
    :func:`encrypt_secret` before storing); ``public_b64`` is the value of the
    DNS record's ``p=`` tag.
    """
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private_pem = key.private_bytes(
        encoding=serialization.Encoding.PEM,
        format=serialization.PrivateFormat.TraditionalOpenSSL,
        encryption_algorithm=serialization.NoEncryption(),
    )
    public_der = key.public_key().public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return private_pem, base64.b64encode(public_der).decode("ascii")


def public_key_b64(private_pem: bytes) -> str:
    """The ``p=`` value for a private key in PEM form."""
    key = serialization.load_pem_private_key(private_pem, password=None)
    der = key.public_key().public_bytes(
        encoding=serialization.Encoding.DER,
        format=serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return base64.b64encode(der).decode("ascii")


def _derive(key: bytes | str) -> AESGCM:
    material = key.encode("utf-8") if isinstance(key, str) else key
    if not material:
        raise InvalidInput("The secret key is empty.", field="TIDINGS_SECRET_KEY")
    derived = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_HKDF_INFO).derive(
        material
    )
    return AESGCM(derived)


def encrypt_secret(key: bytes | str, plaintext: bytes) -> str:
    """Encrypt ``plaintext`` under the Tidings secret ``key``; returns an ASCII token.

    Every call uses a fresh random nonce, so equal plaintexts give different
    tokens. Only :func:`decrypt_secret` with the same key reads it back.
    """
    nonce = os.urandom(_NONCE_BYTES)
    sealed = _derive(key).encrypt(nonce, plaintext, _TOKEN_VERSION.encode("ascii"))
    return _TOKEN_VERSION + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")


def decrypt_secret(key: bytes | str, token: str) -> bytes:
    """The plaintext sealed by :func:`encrypt_secret`; raises :class:`UndecryptableSecret`."""
    if not isinstance(token, str) or not token.startswith(_TOKEN_VERSION):
        raise UndecryptableSecret("The stored secret is not in a format Tidings knows.")
    try:
        raw = base64.urlsafe_b64decode(token[len(_TOKEN_VERSION) :].encode("ascii"))
        if len(raw) <= _NONCE_BYTES:
            raise ValueError("too short")
        return _derive(key).decrypt(
            raw[:_NONCE_BYTES], raw[_NONCE_BYTES:], _TOKEN_VERSION.encode("ascii")
        )
    except (InvalidTag, ValueError) as exc:
        raise UndecryptableSecret() from exc


def canonicalize_body_relaxed(body: bytes) -> bytes:
    """RFC 6376 relaxed body canonicalization; ``\\n`` and ``\\r\\n`` both end a line.

    WSP runs become one space, WSP at line ends goes, empty lines at the end
    go, and a non-empty body ends with exactly one CRLF (as it does on the wire).
    """
    text = body.replace(b"\r\n", b"\n")
    if b"\t" in text or b"  " in text:  # a substring search is far faster than the regex scan
        text = _WSP_TO_SPACE.sub(b" ", text)
    text = text.replace(b" \n", b"\n").rstrip(b" \n")
    if not text:
        return b""
    return text.replace(b"\n", b"\r\n") + b"\r\n"


def canonicalize_header_relaxed(name: bytes, value: bytes) -> bytes:
    """RFC 6376 relaxed header canonicalization of one field, ending in CRLF.

    ``value`` is everything after the colon, folding line breaks included.
    """
    unfolded = _EOL.sub(b"", value)
    return name.strip().lower() + b":" + _WSP_TO_SPACE.sub(b" ", unfolded).strip(b" \t") + b"\r\n"


def split_message(message: bytes) -> tuple[list[tuple[bytes, bytes]], bytes, bytes]:
    """``(headers, body, line_ending)``: header fields as ``(name, raw value)``, in order.

    The raw value keeps its folding. A line that is neither a field nor a
    continuation (an mbox ``From `` line, garbage) is skipped for signing.
    ``line_ending`` is the message's own (``\\r\\n`` or ``\\n``).
    """
    match = _BODY_SPLIT.search(message)
    if match is None:
        head, body = message, b""
    else:
        head, body = message[: match.start()], message[match.end() :]
    ending = b"\r\n" if b"\r\n" in message[:2000] or not message.count(b"\n") else b"\n"
    headers: list[tuple[bytes, bytes]] = []
    for line in _EOL.split(head):
        if line[:1] in (b" ", b"\t"):
            if headers:
                name, value = headers[-1]
                headers[-1] = (name, value + b"\r\n" + line)
            continue
        found = _HEADER_NAME.match(line)
        if found:
            headers.append((found.group(1), line[found.end() :]))
    return headers, body, ending


def _fold_names(names: list[bytes], ending: bytes) -> bytes:
    """``a:b:c;`` folded after a colon before a line passes 72 characters (FWS is allowed there)."""
    lines: list[bytes] = []
    current = b""
    for index, name in enumerate(names):
        piece = name + (b":" if index < len(names) - 1 else b";")
        if current and len(current) + len(piece) > 72:
            lines.append(current)
            current = b""
        current += piece
    lines.append(current)
    return (ending + b"\t").join(lines)


def _fold_b(signature: bytes, ending: bytes) -> bytes:
    """The base64 signature in 72-character pieces, each continuation line indented."""
    pieces = [signature[i : i + 72] for i in range(0, len(signature), 72)]
    return (ending + b"\t").join(pieces)


class DkimSigner:
    """Signs messages for one domain with one RSA key, loaded once.

    ``sign`` is thread-safe and returns the message with a ``DKIM-Signature``
    field prepended (``v=1; a=rsa-sha256; c=relaxed/relaxed``), covering the
    fields of ``headers`` that the message has (each occurrence, bottom-up)
    and over-signing ``From``. ``domain`` is the ASCII (IDNA) form, as
    :func:`tidings.domain.domains.validate_domain` returns it. Raises
    :class:`InvalidInput` for a key that is not an RSA private key in PEM, or
    a message without ``From``.
    """

    def __init__(
        self,
        domain: str,
        selector: str,
        private_pem: bytes,
        headers: Iterable[str] = DEFAULT_HEADERS,
    ) -> None:
        try:
            key = serialization.load_pem_private_key(private_pem, password=None)
        except (ValueError, TypeError) as exc:
            raise InvalidInput("The DKIM private key is not a PEM private key.") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise InvalidInput("The DKIM private key must be an RSA key.")
        self.domain = domain
        self.selector = selector
        self._key = key
        self._headers = tuple(h.lower().encode("ascii") for h in headers)
        if b"from" not in self._headers:
            raise InvalidInput("DKIM must sign the From header.")
        self._prefix = f"v=1; a=rsa-sha256; c=relaxed/relaxed; d={domain}; s={selector};".encode(
            "ascii"
        )

    def signature_header(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """The ``DKIM-Signature`` field for ``message``, folded, ending in the message's EOL."""
        fields, body, ending = split_message(message)
        body_hash = base64.b64encode(hashlib.sha256(canonicalize_body_relaxed(body)).digest())

        by_name: dict[bytes, list[bytes]] = {}
        for name, value in fields:
            by_name.setdefault(name.lower(), []).append(value)
        if b"from" not in by_name:
            raise InvalidInput("The message has no From header to sign.")

        signed_names: list[bytes] = []
        hashed: list[bytes] = []
        for name in self._headers:
            values = by_name.get(name)
            if not values:
                continue
            # Several occurrences are signed from the bottom up (RFC 6376, 5.4.2).
            for value in reversed(values):
                signed_names.append(name)
                hashed.append(canonicalize_header_relaxed(name, value))
            if name in OVERSIGNED:
                signed_names.append(name)

        stamp = int(time.time()) if timestamp is None else timestamp
        head = b"".join(
            [
                b"DKIM-Signature: ",
                self._prefix,
                ending,
                b"\tt=",
                str(stamp).encode("ascii"),
                b"; bh=",
                body_hash,
                b";",
                ending,
                b"\th=",
                _fold_names(signed_names, ending),
                ending,
                b"\tb=",
            ]
        )
        name, _, value = head.partition(b":")
        hashed.append(canonicalize_header_relaxed(name, value)[:-2])
        signature = self._key.sign(b"".join(hashed), padding.PKCS1v15(), hashes.SHA256())
        encoded = base64.b64encode(signature)
        return head + _fold_b(encoded, ending) + ending

    def sign(self, message: bytes, *, timestamp: int | None = None) -> bytes:
        """``message`` with its ``DKIM-Signature`` field prepended; the rest is unchanged.

        ``timestamp`` (the ``t=`` tag, Unix seconds) defaults to now.
        """
        return self.signature_header(message, timestamp=timestamp) + message
