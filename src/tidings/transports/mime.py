"""Fast RFC 5322 / MIME assembly of one mailing's messages.

:class:`MessageFactory` encodes everything shared by a mailing once (From,
Reply-To, extra headers, the MIME boundary); :meth:`MessageFactory.build`
then only encodes what differs per message. The per-message path does not
use the ``email`` package (several times slower); the output
parses back with ``email.message_from_bytes(..., policy=email.policy.default)``
to exactly the inputs, see the tests.

The message:

- lines end with CRLF and are at most 78 octets in the headers (hard limit
  998 everywhere);
- ``Subject`` and display names are RFC 2047 encoded-words (UTF-8, ``B``)
  only when needed: non-ASCII, control characters, leading white space or a
  text that looks like an encoded word; otherwise they stay readable, folded
  at spaces;
- ``multipart/alternative`` with ``text/plain`` then ``text/html`` (the
  preferred part last), or a single ``text/plain`` when ``html`` is None.

Bodies are ``base64`` by default, ``quoted-printable`` on request
(``body_encoding``). Why base64: it costs a fifth of quoted-printable to
encode (``binascii.b2a_qp`` is the slowest step of a message otherwise, see
``bench/content.py``), its size does not depend on the language (+37%,
where quoted-printable triples every Cyrillic or emoji byte), and it has no
corner cases (long lines, trailing blanks, ``From `` and ``.`` at a line
start). It does not trip SpamAssassin's ``MIME_BASE64_TEXT`` because the
charset is UTF-8. Quoted-printable stays readable and is smaller for
English text; choose it when bandwidth matters more than CPU.

Line breaks in a body are sent in canonical form: every ``\\r\\n``, ``\\r``
or ``\\n`` becomes CRLF, so the decoded part equals the input with its line
breaks written as ``\\r\\n`` (nothing is added or removed at the end).

Header injection: CR and LF in the subject and display names are replaced by
spaces; an address, Message-ID or List-Unsubscribe URL containing white
space or control characters is refused with
``InvalidInput(code="invalid_header")``.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from tidings.errors import InvalidInput

CRLF = "\r\n"
BodyEncoding = Literal["base64", "quoted-printable"]
#: Encoded-word budget: 78-octet lines, "=?utf-8?b?" + "?=" around the base64.
_WORD_OVERHEAD = 12
_LINE = 78
_NO_CRLF = str.maketrans({"\r": " ", "\n": " "})
_PLAIN = re.compile(r"[!-~]+(?:[ \t]+[!-~]+)*")  # printable ASCII, no blank at either end
_NEXT_FOLD = re.compile(r"[!-~] ")
_ADDRESS = re.compile(r"[^\s<>()\[\],;:\"\\@]+@[^\s<>()\[\],;:\"\\@]+")
_ATOM_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~ -]+")
_FROM_LINE = re.compile(rb"(?:^|(?<=\n))From ")
_OWN_HEADERS = frozenset(
    {
        "from", "reply-to", "to", "cc", "bcc", "subject", "date", "message-id", "mime-version",
        "x-tidings-mailing", "list-unsubscribe", "list-unsubscribe-post",
    }
)  # fmt: skip
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("", "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _refuse(what: str, value: str) -> InvalidInput:
    return InvalidInput(f"The {what} {value!r} cannot be used in an email header.", code="invalid_header")


# --------------------------------------------------------------------------- headers


def _encoded_words(text: str, used: int) -> str:
    """RFC 2047 ``B`` words for ``text``, folded; ``used`` octets precede on line one.

    Words never split a UTF-8 sequence, as RFC 2047 requires.
    """
    data = text.encode("utf-8")
    words: list[str] = []
    budget = max((_LINE - used - _WORD_OVERHEAD) // 4 * 3, 3)
    i, n = 0, len(data)
    while i < n:
        j = min(i + budget, n)
        while j < n and j > i + 1 and data[j] & 0xC0 == 0x80:
            j -= 1
        words.append("=?utf-8?b?" + base64.b64encode(data[i:j]).decode("ascii") + "?=")
        i = j
        budget = (_LINE - 1 - _WORD_OVERHEAD) // 4 * 3
    return (CRLF + " ").join(words) if words else ""


def _fold(text: str, used: int) -> str | None:
    """Fold plain ASCII ``text`` before spaces into lines of at most 78 octets
    where it can; None when a line would still exceed 998 octets."""
    if used + len(text) <= _LINE:
        return text
    lines: list[str] = []
    start, limit = 0, _LINE - used
    while len(text) - start > limit:
        cut = text.rfind(" ", start + 1, start + limit + 1)
        while cut > start and text[cut - 1] in " \t":  # keep runs of blanks together
            cut = text.rfind(" ", start + 1, cut)
        if cut <= start:  # one long word: break at the next possible space
            found = _NEXT_FOLD.search(text, start + 1)
            if found is None:
                break
            cut = found.start() + 1
        lines.append(text[start:cut])
        start, limit = cut, _LINE
    lines.append(text[start:])
    if len(lines[0]) + used > 998 or max(len(line) for line in lines) > 998:
        return None
    return CRLF.join(lines)


def encode_text_header(name: str, value: str) -> str:
    """Return ``Name: value`` (no CRLF at the end), encoded and folded.

    CR and LF in ``value`` become spaces; anything that would not survive as
    plain text becomes RFC 2047 encoded-words.
    """
    value = value.translate(_NO_CRLF)
    used = len(name) + 2
    if value.isascii() and _PLAIN.fullmatch(value) and "=?" not in value:
        folded = _fold(value, used)
        if folded is not None:
            return f"{name}: {folded}"
    elif not value:
        return f"{name}: "
    return f"{name}: {_encoded_words(value, used)}"


def _check_address(what: str, address: str) -> str:
    if not _ADDRESS.fullmatch(address) or not address.isprintable():
        raise _refuse(what, address)
    local, _, domain = address.rpartition("@")
    if not domain.isascii():
        try:
            domain = domain.encode("idna").decode("ascii")
        except UnicodeError as exc:
            raise _refuse(what, address) from exc
    return f"{local}@{domain}"


def _mailbox(name: str | None, address: str, used: int) -> str:
    """``Name <address>`` with the name quoted or encoded as needed."""
    name = (name or "").translate(_NO_CRLF).strip()
    if not name:
        return address
    if name.isascii() and name.isprintable() and len(name) + used < 60:
        if _ATOM_NAME.fullmatch(name) and "  " not in name:
            phrase = name
        else:
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
    else:
        phrase = _encoded_words(name, used)
    return f"{phrase} <{address}>"


def _date_header(now: float) -> str:
    t = time.gmtime(now)
    return "Date: %s, %02d %s %04d %02d:%02d:%02d +0000" % (  # noqa: UP031 - fastest here
        _DAYS[t.tm_wday], t.tm_mday, _MONTHS[t.tm_mon], t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
    )  # fmt: skip


_date_cache: tuple[int, str] = (-1, "")


def _current_date() -> str:
    global _date_cache
    second = int(time.time())
    cached = _date_cache
    if cached[0] != second:
        cached = _date_cache = (second, _date_header(second))
    return cached[1]


# --------------------------------------------------------------------------- bodies


def _canonical(text: str) -> bytes:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    return text.encode("utf-8").replace(b"\n", b"\r\n")


_LINES = [slice(i, i + 76) for i in range(0, 76 * 4096, 76)]  # base64 lines of bodies up to 228 KB


def encode_body(text: str, encoding: BodyEncoding = "base64") -> bytes:
    """Return ``text`` as UTF-8 in the given transfer encoding.

    Lines of the result are at most 76 octets and end with CRLF (none after the
    last line).
    """
    data = _canonical(text)
    if encoding == "base64":
        encoded = binascii.b2a_base64(data, newline=False)
        lines = (len(encoded) + 75) // 76
        if lines > len(_LINES):
            return b"\r\n".join([encoded[i : i + 76] for i in range(0, len(encoded), 76)])
        return b"\r\n".join(map(encoded.__getitem__, _LINES[:lines]))
    encoded = binascii.b2a_qp(data, istext=True)
    if b"\n" not in data:  # b2a_qp uses the input's line ending for its soft breaks
        encoded = encoded.replace(b"=\n", b"=\r\n")
    if b"From " in encoded:  # some MTAs turn a line's "From " into ">From ", breaking DKIM
        encoded = _FROM_LINE.sub(b"=46rom ", encoded)
    return encoded


# --------------------------------------------------------------------------- factory


@dataclass(frozen=True, kw_only=True)
class MessageFactory:
    """Builds the messages of one mailing; create one per mailing and reuse it.

    ``headers`` are extra headers added to every message (names of printable
    ASCII, values encoded like the subject). Raises ``InvalidInput`` for an
    address or header that cannot be put in a header.
    """

    from_email: str
    from_name: str | None
    reply_to: str | None
    mailing_id: int | str
    headers: Mapping[str, str] | None = None
    body_encoding: BodyEncoding = "base64"
    _head: str = field(init=False, repr=False)
    _boundary: str = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.body_encoding not in ("base64", "quoted-printable"):
            raise ValueError(f"unknown body encoding {self.body_encoding!r}")
        from_email = _check_address("sender address", self.from_email)
        lines = [f"From: {_mailbox(self.from_name, from_email, len('From: '))}"]
        if self.reply_to:
            lines.append(f"Reply-To: {_check_address('reply-to address', self.reply_to)}")
        lines.append("MIME-Version: 1.0")
        lines.append(encode_text_header("X-Tidings-Mailing", str(self.mailing_id)))
        for name, value in (self.headers or {}).items():
            if not name or not all("!" <= c <= "~" and c != ":" for c in name):
                raise _refuse("header name", name)
            if name.lower() in _OWN_HEADERS or name.lower().startswith("content-"):
                raise _refuse("header name (set by Tidings itself)", name)
            if "\r" in value or "\n" in value:
                raise _refuse(f"value of header {name}", value)
            lines.append(encode_text_header(name, value))
        object.__setattr__(self, "_head", CRLF.join(lines) + CRLF)
        # "=_" never occurs in quoted-printable or base64 output, so no body can contain it
        object.__setattr__(self, "_boundary", f"=_tidings_{secrets.token_hex(12)}")

    def build(
        self,
        *,
        message_id_header: str,
        to: str,
        subject: str,
        html: str | None,
        text: str,
        list_unsubscribe: str | None,
        date: str | None = None,
    ) -> bytes:
        """Return the whole message, CRLF line endings.

        ``message_id_header`` with or without angle brackets; ``to`` a bare
        address; ``list_unsubscribe`` a URL (or an already bracketed list) for
        ``List-Unsubscribe`` plus the one-click ``List-Unsubscribe-Post``;
        ``date`` an RFC 5322 date, by default now (formatted once a second).
        """
        to = _check_address("recipient address", to) if not to.isascii() else to
        if not _ADDRESS.fullmatch(to) or not to.isprintable():
            raise _refuse("recipient address", to)
        mid = message_id_header.strip("<>")
        if not (mid.isascii() and mid.isprintable()) or not mid or any(c in mid for c in " <>"):
            raise _refuse("Message-ID", message_id_header)
        parts = [
            self._head,
            "To: ", to, CRLF,
            encode_text_header("Subject", subject), CRLF,
            _current_date() if date is None else encode_text_header("Date", date), CRLF,
            "Message-ID: <", mid, ">", CRLF,
        ]  # fmt: skip
        if list_unsubscribe:
            value = list_unsubscribe if list_unsubscribe.startswith("<") else f"<{list_unsubscribe}>"
            if not value.isascii() or not value.isprintable() or len(value) > 900:
                raise _refuse("List-Unsubscribe URL", list_unsubscribe)
            parts += [
                "List-Unsubscribe: ", value, CRLF,
                "List-Unsubscribe-Post: List-Unsubscribe=One-Click", CRLF,
            ]  # fmt: skip
        cte = self.body_encoding
        text_body = encode_body(text, cte)
        if html is None:
            parts += [
                "Content-Type: text/plain; charset=utf-8", CRLF,
                "Content-Transfer-Encoding: ", cte, CRLF, CRLF,
            ]  # fmt: skip
            # the body runs to the end of the message; a soft break ends QP without a newline
            if cte == "base64":
                end = b"\r\n"
            else:
                end = b"" if text_body.endswith(b"\r\n") else b"=\r\n"
            return "".join(parts).encode("utf-8") + text_body + end
        html_body = encode_body(html, cte)
        boundary = self._boundary
        parts += [
            'Content-Type: multipart/alternative;', CRLF, ' boundary="', boundary, '"', CRLF, CRLF,
            "--", boundary, CRLF,
            "Content-Type: text/plain; charset=utf-8", CRLF,
            "Content-Transfer-Encoding: ", cte, CRLF, CRLF,
        ]  # fmt: skip
        middle = (
            f"\r\n--{boundary}\r\nContent-Type: text/html; charset=utf-8\r\n"
            f"Content-Transfer-Encoding: {cte}\r\n\r\n"
        )
        return b"".join(
            (
                "".join(parts).encode("utf-8"),
                text_body,
                middle.encode("ascii"),
                html_body,
                f"\r\n--{boundary}--\r\n".encode("ascii"),
            )
        )
