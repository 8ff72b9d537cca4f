"""MessageFactory output parsed back with the standard library must give the inputs.

Normalisation the factory documents: CR and LF in the subject and display
names become spaces, display names lose surrounding blanks, and line breaks
in bodies come back as CRLF.
"""

from __future__ import annotations

import base64
import email
import email.header
import email.policy
import email.utils
import re
from datetime import UTC, datetime
from email.message import EmailMessage
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import InvalidInput
from tidings.transports.mime import MessageFactory, encode_text_header

ENCODINGS = ["base64", "quoted-printable"]
CYRILLIC = "Здравствуйте, Анна! Скидки до 50% 🎉🌷"


def factory(**overrides: Any) -> MessageFactory:
    values: dict[str, Any] = {
        "from_email": "news@shop.example",
        "from_name": "Shop",
        "reply_to": "help@shop.example",
        "mailing_id": 42,
    }
    values.update(overrides)
    return MessageFactory(**values)


def build(f: MessageFactory | None = None, **overrides: Any) -> bytes:
    values: dict[str, Any] = {
        "message_id_header": "<tidings.42.7@shop.example>",
        "to": "anna@example.com",
        "subject": "Spring sale",
        "html": "<p>Hello</p>",
        "text": "Hello",
        "list_unsubscribe": "https://t.example/u/TOKEN",
    }
    values.update(overrides)
    return (f or factory()).build(**values)


def parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def rfc2047_display_name(raw: bytes) -> str:
    """The From display name decoded as RFC 2047 says: white space between two
    encoded-words is dropped. (The ``email.policy.default`` address parser
    keeps it, a CPython quirk, so names longer than one encoded-word, about 45
    UTF-8 bytes, are checked with the older, conforming decoder.)"""
    value = email.message_from_bytes(raw, policy=email.policy.compat32)["From"]
    name, _ = email.utils.parseaddr(value)
    return str(email.header.make_header(email.header.decode_header(name)))


def crlf(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n").replace("\n", "\r\n")


def assert_well_formed(raw: bytes) -> None:
    assert b"\n" not in raw.replace(b"\r\n", b""), "a bare LF"
    assert b"\r" not in raw.replace(b"\r\n", b""), "a bare CR"
    lines = raw.split(b"\r\n")
    assert max(len(line) for line in lines) <= 998
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert max(len(line) for line in head.split(b"\r\n")) <= 78 or b"List-Unsubscribe" in head
    assert not parse(raw).defects
    assert all(not part.defects for part in parse(raw).walk())


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_an_ascii_message_parses_back_to_every_header_and_body(encoding: str) -> None:
    f = factory(body_encoding=encoding, headers={"X-Campaign": "spring"})
    raw = build(
        f, html="<p>Hello <b>Anna</b></p>\n", text="Hello Anna\n", date="Sun, 01 Mar 2026 10:00:00 +0000"
    )

    message = parse(raw)

    assert_well_formed(raw)
    assert [(k, str(v)) for k, v in message.items()] == [
        ("From", "Shop <news@shop.example>"),
        ("Reply-To", "help@shop.example"),
        ("MIME-Version", "1.0"),
        ("X-Tidings-Mailing", "42"),
        ("X-Campaign", "spring"),
        ("To", "anna@example.com"),
        ("Subject", "Spring sale"),
        ("Date", "Sun, 01 Mar 2026 10:00:00 +0000"),
        ("Message-ID", "<tidings.42.7@shop.example>"),
        ("List-Unsubscribe", "<https://t.example/u/TOKEN>"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
        ("Content-Type", f'multipart/alternative; boundary="{f._boundary}"'),
    ]
    plain, html = message.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert plain["Content-Transfer-Encoding"] == encoding
    assert plain.get_content_charset() == "utf-8"
    assert plain.get_content() == "Hello Anna\r\n"
    assert html.get_content() == "<p>Hello <b>Anna</b></p>\r\n"


@pytest.mark.parametrize("encoding", ENCODINGS)
def test_a_cyrillic_and_emoji_message_parses_back_exactly(encoding: str) -> None:
    f = factory(from_name="Магазин «Ромашка» 🌼", body_encoding=encoding)
    text = f"{CYRILLIC}\nВторая строка\n\n— Ваш магазин 🛍"
    html = f"<html><body><h1>{CYRILLIC}</h1>\n<p>Вторая строка</p></body></html>"

    raw = build(f, subject=CYRILLIC, html=html, text=text)
    message = parse(raw)

    assert_well_formed(raw)
    assert raw.isascii()
    assert str(message["Subject"]) == CYRILLIC
    (sender,) = message["From"].addresses
    assert (sender.display_name, sender.addr_spec) == ("Магазин «Ромашка» 🌼", "news@shop.example")
    assert message.get_body(("plain",)).get_content() == crlf(text)  # type: ignore[union-attr]
    assert message.get_body(("html",)).get_content() == crlf(html)  # type: ignore[union-attr]


def test_without_html_the_message_is_a_single_text_part() -> None:
    raw = build(html=None, text="Только текст\nи всё")

    message = parse(raw)

    assert_well_formed(raw)
    assert not message.is_multipart()
    assert message.get_content_type() == "text/plain"
    assert message.get_content() == "Только текст\r\nи всё"


@pytest.mark.parametrize("text", ["", "ends with a newline\n", "no newline", "From here\n.\n"])
def test_a_text_only_quoted_printable_body_keeps_its_exact_end(text: str) -> None:
    raw = build(factory(body_encoding="quoted-printable"), html=None, text=text)

    assert parse(raw).get_content() == crlf(text)


def test_long_lines_are_wrapped_in_the_encoding_and_come_back_whole() -> None:
    line = "word " * 1000 + "x" * 3000
    for encoding in ENCODINGS:
        raw = build(factory(body_encoding=encoding), html=f"<p>{line}</p>", text=line)
        message = parse(raw)

        assert_well_formed(raw)
        assert max(len(row) for row in raw.split(b"\r\n")) <= 78
        assert message.get_body(("plain",)).get_content() == line  # type: ignore[union-attr]


def test_a_long_subject_is_folded_below_78_octets_and_unfolds_exactly() -> None:
    subject = "Our biggest   spring sale ever: " + " ".join(f"item{n}" for n in range(60))

    raw = build(subject=subject)

    assert_well_formed(raw)
    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert re.search(r"^Subject: Our biggest   spring sale ever: item0.*\r\n ", head, re.M)
    assert str(parse(raw)["Subject"]) == subject


@pytest.mark.parametrize(
    "subject",
    [
        "x" * 1500,
        "Длинная тема " * 30,
        " leading blank",
        "trailing blank ",
        "=?utf-8?q?looks_encoded?=",
        "tab\tand\x07bell",
        "",
    ],
)
def test_awkward_subjects_come_back_exactly(subject: str) -> None:
    raw = build(subject=subject)

    assert_well_formed(raw)
    assert str(parse(raw)["Subject"]) == subject


def test_the_subject_is_plain_text_when_it_can_be_and_encoded_only_when_needed() -> None:
    assert encode_text_header("Subject", "Spring sale") == "Subject: Spring sale"
    assert encode_text_header("Subject", "Привет").startswith("Subject: =?utf-8?b?")


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("Shop", "Shop <news@shop.example>"),
        ("Shop, Inc. (Sweden)", '"Shop, Inc. (Sweden)" <news@shop.example>'),
        ('The "Best" Shop\\', '"The \\"Best\\" Shop\\\\" <news@shop.example>'),
        (None, "news@shop.example"),
        ("", "news@shop.example"),
    ],
)
def test_ascii_display_names_are_quoted_when_needed(name: str | None, shown: str) -> None:
    raw = build(factory(from_name=name))

    head = raw.split(b"\r\n\r\n", 1)[0].decode()
    assert f"From: {shown}\r\n" in head
    (sender,) = parse(raw)["From"].addresses
    assert (sender.display_name, sender.addr_spec) == (name or "", "news@shop.example")


def test_the_date_defaults_to_now_in_rfc_5322_form() -> None:
    before = datetime.now(UTC).replace(microsecond=0)

    date = parse(build())["Date"].datetime

    assert before <= date <= datetime.now(UTC)
    assert date.utcoffset().total_seconds() == 0


def test_list_unsubscribe_headers_are_left_out_without_a_url() -> None:
    message = parse(build(list_unsubscribe=None))

    assert message["List-Unsubscribe"] is None
    assert message["List-Unsubscribe-Post"] is None


def test_message_ids_are_bracketed_whether_or_not_they_came_with_brackets() -> None:
    assert parse(build(message_id_header="a.1@x.example"))["Message-ID"] == "<a.1@x.example>"


def test_an_internationalised_recipient_domain_is_sent_as_punycode() -> None:
    assert parse(build(to="anna@пример.рф"))["To"] == "anna@xn--e1afmkfd.xn--p1ai"


# ----------------------------------------------------------------- header injection


def test_a_newline_in_the_subject_cannot_add_a_header() -> None:
    raw = build(subject="Hi\r\nBcc: victim@example.com\nX-Evil: 1")

    message = parse(raw)

    assert_well_formed(raw)
    assert message["Bcc"] is None and message["X-Evil"] is None
    assert str(message["Subject"]) == "Hi  Bcc: victim@example.com X-Evil: 1"


def test_a_newline_in_the_display_name_cannot_add_a_header() -> None:
    raw = build(factory(from_name="Shop\r\nBcc: victim@example.com"))

    message = parse(raw)

    assert message["Bcc"] is None
    assert message["From"].addresses[0].display_name == "Shop  Bcc: victim@example.com"


@pytest.mark.parametrize(
    "overrides",
    [
        {"to": "anna@example.com\r\nBcc: victim@example.com"},
        {"to": "anna@example.com, victim@example.com"},
        {"to": "Anna <anna@example.com>"},
        {"message_id_header": "<a@b>\r\nBcc: victim@example.com"},
        {"list_unsubscribe": "https://t.example/u\r\nBcc: victim@example.com"},
    ],
)
def test_an_address_or_id_with_a_newline_or_extra_parts_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        build(**overrides)

    assert caught.value.code == "invalid_header"


@pytest.mark.parametrize(
    "overrides",
    [
        {"from_email": "news@shop.example\r\nBcc: victim@example.com"},
        {"reply_to": "help@shop.example\nBcc: victim@example.com"},
        {"headers": {"X-Campaign": "a\r\nBcc: victim@example.com"}},
        {"headers": {"X-Bad Name": "a"}},
        {"headers": {"Subject": "second subject"}},
    ],
)
def test_a_factory_with_an_unsafe_header_is_refused(overrides: dict[str, Any]) -> None:
    with pytest.raises(InvalidInput) as caught:
        factory(**overrides)

    assert caught.value.code == "invalid_header"


# ----------------------------------------------------------------- properties

# Text as templates produce it: any characters except surrogates.
texts = st.text(st.characters(exclude_categories=["Cs"]), max_size=400)


@settings(max_examples=300, deadline=None)
@given(subject=texts, text=texts, html=st.one_of(st.none(), texts), name=texts)
def test_any_subject_name_and_bodies_round_trip(subject: str, text: str, html: str | None, name: str) -> None:
    for encoding in ENCODINGS:
        f = factory(from_name=name, body_encoding=encoding)

        raw = build(f, subject=subject, text=text, html=html)
        message = parse(raw)

        assert_well_formed(raw)
        assert str(message["Subject"]) == subject.replace("\r", " ").replace("\n", " ")
        expected_name = name.replace("\r", " ").replace("\n", " ").strip()
        assert rfc2047_display_name(raw) == expected_name
        assert message.get_body(("plain",)).get_content() == crlf(text)  # type: ignore[union-attr]
        if html is not None:
            assert message.get_body(("html",)).get_content() == crlf(html)  # type: ignore[union-attr]


def test_parsing_with_email_utils_gives_the_same_date_as_the_header() -> None:
    raw = build(date="Mon, 02 Mar 2026 08:30:00 +0000")

    assert email.utils.parsedate_to_datetime(parse(raw)["Date"]) == datetime(2026, 3, 2, 8, 30, tzinfo=UTC)


def test_dot_stuffing_doubles_leading_dots_and_ends_with_crlf():
    from tidings.transports.smtp import dot_stuff

    assert dot_stuff(b".a\r\nb\r\n.c\r\n..d") == b"..a\r\nb\r\n..c\r\n...d\r\n"
    assert dot_stuff(b"plain\r\n") == b"plain\r\n"


def test_a_body_beyond_the_precut_base64_lines_is_wrapped_the_same() -> None:
    from tidings.transports.mime import encode_body

    text = "".join(f"line {i} ü\n" for i in range(30_000))  # about 330 KB, base64 past 228 KB

    encoded = encode_body(text)

    lines = encoded.split(b"\r\n")
    assert all(len(line) == 76 for line in lines[:-1]) and 0 < len(lines[-1]) <= 76
    assert base64.b64decode(b"".join(lines)).decode() == text.replace("\n", "\r\n")
