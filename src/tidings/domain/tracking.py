"""Signed tokens that identify a message in tracking links and bounce addresses.

A token carries a message id (and, for clicks, the destination URL) plus a
truncated HMAC-SHA256 (:data:`MAC_BYTES` bytes) keyed with the installation's
secret. The MAC covers the purpose, so a token made for one purpose never
verifies for another. Verification recomputes the MAC in constant time and
also re-encodes the token, so changing *any* character (even the unused low
bits of the last base64 character) makes it fail with
``InvalidInput(code="bad_token")``.

Purposes (:data:`PURPOSES`):

``open``, ``unsub``
    url-safe base64 (``[A-Za-z0-9_-]``), about 27 characters.
``click``
    :func:`sign_click`: one url-safe base64 path segment holding the message
    id, the URL and the MAC.
``bounce``
    lower-case base32 (``[a-z2-7]``), about 35 characters, valid in the local
    part of ``bounces+TOKEN@domain`` (VERP) and safe when an MTA lowercases
    or uppercases the local part: verification ignores case.
``short``
    :func:`sign_short`: the links of an SMS, where every character costs. The
    message id and a link number as variable-length integers and a MAC of
    :data:`SHORT_MAC_BYTES` (64 bits: guessing one takes 2**63 requests on
    average), url-safe base64: 14 to 20 characters for message ids below
    2**35 and link numbers below 128 (every real mailing), 30 at the very
    most. The link's URL is not in it; the number names a link stored for
    the mailing.

Pure: standard library only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Callable

from tidings.errors import InvalidInput

#: The message id carried by the links of a test send: no message row has it.
TEST_MESSAGE_ID = 0
#: Bytes of HMAC-SHA256 kept in a token: 128 bits.
MAC_BYTES = 16
PURPOSES = frozenset({"open", "click", "unsub", "bounce", "short"})
#: Bytes of MAC in a short link's token.
SHORT_MAC_BYTES = 8
_DOMAIN = b"tidings/"
_MAX_ID_BYTES = 8
_KEYS: dict[tuple[bytes, str], bytes] = {}


def _key(secret: bytes, purpose: str) -> bytes:
    key = _KEYS.get((secret, purpose))
    if key is None:
        if len(_KEYS) > 64:
            _KEYS.clear()
        key = _KEYS[(secret, purpose)] = hmac.new(
            secret, _DOMAIN + purpose.encode() + b"\x00", hashlib.sha256
        ).digest()
    return key


def _mac(secret: bytes, purpose: str, payload: bytes) -> bytes:
    """Keyed BLAKE2b (RFC 7693 MAC mode) with a key derived per secret and purpose
    by HMAC-SHA256: one C call per token, several times cheaper than an HMAC
    object copy on the per-message path, where each email signs about eight."""
    return hashlib.blake2b(payload, key=_key(secret, purpose), digest_size=MAC_BYTES).digest()


def _id_bytes(message_id: int) -> bytes:
    if message_id < 0 or message_id >= 1 << (8 * _MAX_ID_BYTES):
        raise ValueError(f"message id out of range: {message_id}")
    return message_id.to_bytes(max(1, (message_id.bit_length() + 7) // 8), "big")


_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _b64(data: bytes) -> str:
    return binascii.b2a_base64(data, newline=False).translate(_URLSAFE).rstrip(b"=").decode("ascii")


def _unb64(token: str) -> bytes:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError) as exc:
        raise _bad() from exc
    if _b64(raw) != token:  # non-canonical spelling, foreign characters
        raise _bad()
    return raw


def _b32(data: bytes) -> str:
    return base64.b32encode(data).rstrip(b"=").decode("ascii").lower()


def _unb32(token: str) -> bytes:
    token = token.lower()
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except (binascii.Error, ValueError) as exc:
        raise _bad() from exc
    if _b32(raw) != token:
        raise _bad()
    return raw


def _bad() -> InvalidInput:
    return InvalidInput("The link or token is invalid or has been altered.", code="bad_token")


def _check_purpose(purpose: str) -> None:
    if purpose not in PURPOSES:
        raise ValueError(f"unknown token purpose {purpose!r}; expected one of {sorted(PURPOSES)}")


def sign_message_token(secret: bytes, message_id: int, purpose: str) -> str:
    """Return a short token naming ``message_id`` for ``purpose``.

    ``bounce`` tokens are lower-case base32 (VERP-safe); the others url-safe
    base64. Deterministic: the same inputs give the same token. Raises
    ``ValueError`` for an unknown purpose or a message id outside 0..2**64-1.
    """
    _check_purpose(purpose)
    payload = _id_bytes(message_id)
    raw = payload + _mac(secret, purpose, payload)
    return _b32(raw) if purpose == "bounce" else _b64(raw)


def verify_message_token(secret: bytes, token: str, purpose: str) -> int:
    """Return the message id in ``token`` made by :func:`sign_message_token`.

    Raises ``InvalidInput(code="bad_token")`` when the token was altered, was
    made with another secret or for another purpose.
    """
    _check_purpose(purpose)
    if not token.isascii():
        raise _bad()
    raw = _unb32(token) if purpose == "bounce" else _unb64(token)
    payload, mac = raw[:-MAC_BYTES], raw[-MAC_BYTES:]
    if not 1 <= len(payload) <= _MAX_ID_BYTES or (len(payload) > 1 and payload[0] == 0):
        raise _bad()
    if not hmac.compare_digest(mac, _mac(secret, purpose, payload)):
        raise _bad()
    return int.from_bytes(payload, "big")


def sign_click(secret: bytes, message_id: int, url: str) -> str:
    """Return one url-safe path segment carrying ``message_id`` and ``url``.

    Layout before base64: MAC, one byte of id length, the id, the UTF-8 URL.
    The caller decides what ``url`` is (usually the original link with the
    mailing's UTM tags merged); :func:`verify_click` gives it back verbatim.
    """
    ident = _id_bytes(message_id)
    payload = bytes((len(ident),)) + ident + url.encode("utf-8")
    return _b64(_mac(secret, "click", payload) + payload)


def click_signer(secret: bytes, message_id: int) -> Callable[[str], str]:
    """:func:`sign_click` for one message and many URLs, the id and key prepared once."""
    ident = _id_bytes(message_id)
    head = bytes((len(ident),)) + ident
    key = _key(secret, "click")
    blake2b = hashlib.blake2b

    def sign(url: str) -> str:
        payload = head + url.encode("utf-8")
        return _b64(blake2b(payload, key=key, digest_size=MAC_BYTES).digest() + payload)

    return sign


def verify_click(secret: bytes, token: str) -> tuple[int, str]:
    """Return ``(message_id, url)`` from a :func:`sign_click` segment.

    Raises ``InvalidInput(code="bad_token")`` on any alteration.
    """
    if not token.isascii():
        raise _bad()
    raw = _unb64(token)
    mac, payload = raw[:MAC_BYTES], raw[MAC_BYTES:]
    if len(payload) < 2 or not 1 <= payload[0] <= _MAX_ID_BYTES:
        raise _bad()
    if not hmac.compare_digest(mac, _mac(secret, "click", payload)):
        raise _bad()
    size = payload[0]
    ident = payload[1 : 1 + size]
    try:
        url = payload[1 + size :].decode("utf-8")
    except UnicodeDecodeError as exc:  # only reachable with a forged MAC
        raise _bad() from exc
    return int.from_bytes(ident, "big"), url


def bounce_address(secret: bytes, message_id: int, *, domain: str, prefix: str = "bounces") -> str:
    """Return the VERP envelope sender ``PREFIX+TOKEN@DOMAIN`` for a message."""
    return f"{prefix}+{sign_message_token(secret, message_id, 'bounce')}@{domain}"


def message_id_from_bounce_address(secret: bytes, address: str) -> int:
    """Return the message id in a :func:`bounce_address` (any letter case).

    Raises ``InvalidInput(code="bad_token")`` when the address carries no
    valid token.
    """
    local = address.rpartition("@")[0] if "@" in address else address
    _, plus, token = local.partition("+")
    if not plus:
        raise _bad()
    return verify_message_token(secret, token, "bounce")


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def _read_varint(data: bytes, at: int) -> tuple[int, int]:
    value = shift = 0
    while at < len(data) and shift < 64:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    raise _bad()


def sign_short(secret: bytes, message_id: int, link: int) -> str:
    """A short token naming link number ``link`` of message ``message_id``
    (see ``short`` in the module docstring). Deterministic."""
    _id_bytes(message_id)  # the range check
    if not 0 <= link < 1 << 32:
        raise ValueError(f"link number out of range: {link}")
    payload = _varint(message_id) + _varint(link)
    mac = hashlib.blake2b(payload, key=_key(secret, "short"), digest_size=SHORT_MAC_BYTES).digest()
    return _b64(payload + mac)


def verify_short(secret: bytes, token: str) -> tuple[int, int]:
    """``(message_id, link)`` from a :func:`sign_short` token; raises
    ``InvalidInput(code="bad_token")`` when it was altered or made with another secret."""
    if not token.isascii():
        raise _bad()
    raw = _unb64(token)
    payload, mac = raw[:-SHORT_MAC_BYTES], raw[-SHORT_MAC_BYTES:]
    message_id, at = _read_varint(payload, 0)
    link, at = _read_varint(payload, at)
    if at != len(payload) or _varint(message_id) + _varint(link) != payload:
        raise _bad()
    expected = hashlib.blake2b(payload, key=_key(secret, "short"), digest_size=SHORT_MAC_BYTES).digest()
    if not hmac.compare_digest(mac, expected):
        raise _bad()
    return message_id, link
