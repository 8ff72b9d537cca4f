"""Reading bounces and complaints that come back by mail.

:func:`parse_report` turns one inbound message into a :class:`FeedbackReport`,
or ``None`` when it is not a report we act on. It never raises: anything it
cannot read is logged and gives ``None``.

Understood formats:

- RFC 3464 delivery status notifications (``multipart/report;
  report-type=delivery-status``, also RFC 6533 ``message/global-delivery-status``):
  ``Action: failed`` with a ``5.x.x`` status is a hard bounce; a ``4.x.x``
  status (retries ran out) or ``Action: delayed`` a soft one; ``Action:
  delivered`` a delivery. With several recipients, a failure wins over a
  delay, a delay over a delivery.
- RFC 5965 abuse reports (``report-type=feedback-report``): a complaint.
  ``auth-failure`` (DMARC forensic reports) and ``not-spam`` are not
  complaints about a recipient and give ``None``.
- Non-standard bounces in plain text (Exim, qmail, Gmail-like and other
  mailer-daemon texts) when the message looks like a bounce (an
  ``X-Failed-Recipients`` header, a mailer-daemon or postmaster sender, or a
  bounce subject): the failed recipient comes from ``X-Failed-Recipients``,
  the usual phrasings, or the copy of the original; the severity from the
  first 4xx/5xx code or status, else from the wording (``None`` if neither says).

Attribution: the VERP token is taken from the envelope recipients
(``bounces+TOKEN@domain``) first, then the report's own ``To``-like headers,
the ARF ``Original-Mail-From``, and the ``Return-Path`` of the original
message's headers included in the report. ``Message-ID`` and
``X-Tidings-Mailing`` come from those included headers. Some mail systems
lowercase addresses, so tokens should not depend on letter case.

flufl.bounce was considered: it only returns addresses (no status code,
diagnostic or original headers), and its extra detectors cover mostly
retired formats, so the heuristics here are our own.
"""

from __future__ import annotations

import email
import logging
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from email.message import Message
from email.parser import BytesHeaderParser
from email.policy import compat32
from email.utils import getaddresses, parseaddr
from typing import Literal

from tidings.errors import InvalidInput

log = logging.getLogger("tidings.feedback")

Kind = Literal["bounce", "complaint", "delivered"]

DEFAULT_VERP_PREFIX = "bounces"
_TOKEN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_STATUS = re.compile(r"(?<![\w.])([245]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_FAIL_STATUS = re.compile(r"(?<![\w.])([45]\.\d{1,3}\.\d{1,3})(?!\.?\d)")
_SMTP_CODE = re.compile(r"(?<![\w.#/=-])([45][0-5]\d)(?=[ -]|$)", re.MULTILINE)
_ADDRESS = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+")
_WS = re.compile(r"\s+")

_DAEMONS = ("mailer-daemon", "mailerdaemon", "mail-daemon", "postmaster", "mdaemon")
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|mail delivery (failed|failure|subsystem)|"
    r"failure notice|returned mail|delivery (failure|has failed|incomplete|problem)|"
    r"could not be delivered|non[- ]?delivery|message .*delayed|delayed mail|"
    r"delivery delayed",
    re.IGNORECASE,
)
_REPLY_SUBJECT = re.compile(r"^\s*(re|aw|sv|antw|wg|fwd?|tr)\s*:", re.IGNORECASE)
_COPY_MARKER = re.compile(
    r"^[ \t]*-*[ \t]*(this is a copy of the message|below this line is a copy of the message|"
    r"original message|the header of the original message|the following is a copy of the|"
    r"unsent message below|returned message|a copy of the original message)\b.*$",
    re.IGNORECASE | re.MULTILINE,
)
# Phrasings that name the failed address, most specific first; group 1 is the address.
_RECIPIENT_PATTERNS = [
    re.compile(r"^<([^<>\s]+@[^<>\s]+)>:\s*$", re.MULTILINE),  # qmail, Postfix texts
    re.compile(
        r"(?:following address(?:\(es\))?(?: failed)?|following recipients?(?: failed)?|"
        r"has not yet been delivered is)\s*:?[ \t]*\r?\n\s*<?([^<>\s,;]+@[^<>\s,;]+)",
        re.IGNORECASE,
    ),  # Exim, Exchange
    re.compile(
        r"(?:wasn't delivered to|was not delivered to|could not be delivered to|"
        r"couldn't be delivered to|delivery to|your message to)\s+<?([^<>\s,;]+@[^<>\s,;]+)",
        re.IGNORECASE,
    ),
    re.compile(r"RCPT TO:\s*<([^<>\s]+@[^<>\s]+)>", re.IGNORECASE),
    re.compile(r"<([^<>\s]+@[^<>\s]+)>\.\.\."),  # sendmail
]
_TEMPORARY = re.compile(
    r"temporar|delayed|not yet been delivered|will (continue|retry|keep trying|be retried)|"
    r"still being retried|try again later|warning only|delivery incomplete",
    re.IGNORECASE,
)
_PERMANENT = re.compile(
    r"permanent|i've given up|given up|does not exist|doesn't exist|user unknown|unknown user|"
    r"no such (user|mailbox|recipient)|no mailbox|address rejected|address not found|"
    r"couldn't be found|mailbox unavailable|could not be delivered|failed permanently",
    re.IGNORECASE,
)
_ACTION_RANK = {"failed": 0, "delayed": 1, "delivered": 2, "relayed": 3, "expanded": 3}


@dataclass(frozen=True, kw_only=True)
class FeedbackReport:
    """What a bounce, complaint or delivery notification says about one message.

    ``hard`` is set for bounces only (True: the address is dead; False: try
    again later; None: the report does not say). ``recipient`` is the address
    as the report gives it. ``status`` is the RFC 3463 code (``5.1.1``) when
    known; ``diagnostic`` the server's words or the complaint's feedback type.
    ``original_message_id`` keeps its angle brackets; ``mailing_id`` is the
    ``X-Tidings-Mailing`` header of the original.
    """

    kind: Kind
    hard: bool | None
    recipient: str | None
    verp_token: str | None
    original_message_id: str | None
    status: str | None
    diagnostic: str | None
    mailing_id: str | None = None


def make_verp_address(*, token: str, domain: str, prefix: str = DEFAULT_VERP_PREFIX) -> str:
    """The envelope sender ``PREFIX+TOKEN@DOMAIN`` that brings a message's bounces back to it.

    ``token`` is letters, digits, ``.``, ``_`` and ``-``; raises :class:`InvalidInput` otherwise.
    """
    if not _TOKEN.match(token):
        raise InvalidInput(f"{token!r} cannot be used in a VERP address.", field="token")
    return f"{prefix}+{token}@{domain}"


def verp_token(address: str | None, *, prefix: str = DEFAULT_VERP_PREFIX) -> str | None:
    """The TOKEN of ``PREFIX+TOKEN@domain`` in ``address`` (a bare address or a header value).

    The prefix is matched without regard to case; an SRS-rewritten address
    (``SRS0=...=shop.example=bounces+TOKEN@forwarder``) still yields the token.
    """
    if not address:
        return None
    pattern = rf"(?:^|[<\s:;,=\"])(?i:{re.escape(prefix)})\+([A-Za-z0-9][A-Za-z0-9._-]*)@"
    found = re.search(pattern, str(address))
    return found.group(1) if found else None


def parse_report(
    raw: bytes,
    *,
    envelope_recipients: Sequence[str] = (),
    verp_prefix: str = DEFAULT_VERP_PREFIX,
) -> FeedbackReport | None:
    """Read one inbound message; ``None`` for anything that is not a usable report.

    ``envelope_recipients`` are the ``RCPT TO`` addresses it arrived for;
    the first VERP address among them attributes the report. A report that
    names neither a recipient, a VERP token nor an original ``Message-ID`` is
    of no use and gives ``None``. Never raises.
    """
    try:
        if not isinstance(raw, bytes | bytearray) or not raw.strip():
            return None
        message = email.message_from_bytes(bytes(raw), policy=compat32)
        if not message.keys():
            return None
        report = _parse(message, envelope_recipients=envelope_recipients, prefix=verp_prefix)
        if report is not None and not (
            report.recipient or report.verp_token or report.original_message_id
        ):
            log.info("ignoring a %s report that names no recipient or message", report.kind)
            return None
        return report
    except Exception:  # a report we cannot read must never break the intake
        log.warning("could not read an inbound feedback message", exc_info=True)
        return None


# -- the three formats -------------------------------------------------------------------


def _parse(
    message: Message, *, envelope_recipients: Sequence[str], prefix: str
) -> FeedbackReport | None:
    envelope_token = next(
        (t for t in (verp_token(r, prefix=prefix) for r in envelope_recipients) if t), None
    )
    report_type = ""
    if message.get_content_type() == "multipart/report":
        report_type = str(message.get_param("report-type", "") or "").lower()
    status_part = _find_part(message, ("message/delivery-status", "message/global-delivery-status"))
    feedback_part = _find_part(message, ("message/feedback-report",))
    if feedback_part is not None and (report_type == "feedback-report" or status_part is None):
        return _parse_arf(message, feedback_part, envelope_token=envelope_token, prefix=prefix)
    if status_part is not None:
        blocks = _field_blocks(status_part)
        if _recipient_blocks(blocks):
            return _parse_dsn(message, blocks, envelope_token=envelope_token, prefix=prefix)
        # A delivery-status part without recipients: read the bounce as text.
    return _parse_text_bounce(message, envelope_token=envelope_token, prefix=prefix)


def _recipient_blocks(blocks: list[dict[str, str]]) -> list[dict[str, str]]:
    return [
        b for b in blocks if "action" in b or "final-recipient" in b or "original-recipient" in b
    ]


def _parse_dsn(
    message: Message, blocks: list[dict[str, str]], *, envelope_token: str | None, prefix: str
) -> FeedbackReport | None:
    per_message = blocks[0]
    recipients = _recipient_blocks(blocks)
    block = min(recipients, key=lambda b: _ACTION_RANK.get(_action(b), len(_ACTION_RANK)))
    action = _action(block)
    diagnostic = _join_reply_lines(_clean(_after_type(block.get("diagnostic-code"))))
    status_match = _STATUS.search(block.get("status", ""))
    status = status_match.group(1) if status_match else None
    if status is None and diagnostic:
        found = _STATUS.search(diagnostic)
        status = found.group(1) if found else None
    code = _first_smtp_code(diagnostic or "")

    kind: Kind
    hard: bool | None
    if action == "failed":
        kind = "bounce"
        if status and status[0] in "45":
            hard = status[0] == "5"
        elif code:
            hard = code[0] == "5"
        else:
            hard = True  # "failed" means the MTA gave up for good (RFC 3464, 2.3.3)
    elif action == "delayed":
        kind, hard = "bounce", False
    elif action == "delivered":
        kind, hard = "delivered", None
    elif status and status[0] in "45":
        kind, hard = "bounce", status[0] == "5"
    else:
        return None  # relayed, expanded or unknown: nothing to act on

    original = _original_headers(message)
    recipient = _address(block.get("original-recipient")) or _address(block.get("final-recipient"))
    message_id = _header(original, "Message-ID") or per_message.get("x-original-message-id")
    return FeedbackReport(
        kind=kind,
        hard=hard,
        recipient=recipient,
        verp_token=envelope_token
        or _token_from_headers(message, prefix)
        or verp_token(per_message.get("x-postfix-sender"), prefix=prefix)
        or _token_from_original(original, prefix),
        original_message_id=_message_id(message_id),
        status=status,
        diagnostic=diagnostic,
        mailing_id=_header(original, "X-Tidings-Mailing"),
    )


def _parse_arf(
    message: Message, part: Message, *, envelope_token: str | None, prefix: str
) -> FeedbackReport | None:
    blocks = _field_blocks(part)
    fields = blocks[0] if blocks else {}
    feedback_type = (fields.get("feedback-type", "abuse").split() or ["abuse"])[0].lower()
    if feedback_type in ("auth-failure", "not-spam"):
        log.info("ignoring a %s feedback report", feedback_type)
        return None
    original = _original_headers(message)
    recipient = _address(fields.get("original-rcpt-to")) or _first_address(_header(original, "To"))
    agent = fields.get("user-agent")
    return FeedbackReport(
        kind="complaint",
        hard=None,
        recipient=recipient,
        verp_token=envelope_token
        or verp_token(fields.get("original-mail-from"), prefix=prefix)
        or _token_from_original(original, prefix)
        or _token_from_headers(message, prefix),
        original_message_id=_message_id(_header(original, "Message-ID")),
        status=None,
        diagnostic=f"{feedback_type} report" + (f" from {_clean(agent)}" if agent else ""),
        mailing_id=_header(original, "X-Tidings-Mailing"),
    )


def _parse_text_bounce(
    message: Message, *, envelope_token: str | None, prefix: str
) -> FeedbackReport | None:
    failed_header = _header(message, "X-Failed-Recipients")
    sender = parseaddr(_header(message, "From") or "")
    sender_local = sender[1].split("@")[0].lower()
    subject = _clean(_header(message, "Subject")) or ""
    looks_like_bounce = (
        bool(failed_header)
        or sender_local in _DAEMONS
        or "mail delivery" in sender[0].lower()
        # A person's reply ("Re: my parcel was not delivered") is not a bounce.
        or (bool(_BOUNCE_SUBJECT.search(subject)) and not _REPLY_SUBJECT.match(subject))
    )
    if not looks_like_bounce:
        return None

    text = _report_text(message)
    marker = _COPY_MARKER.search(text)
    report_text, inline_copy = text, ""
    if marker:
        report_text, inline_copy = text[: marker.start()], text[marker.end() :]
    original = _original_headers(message)
    if original is None and inline_copy.strip():
        original = BytesHeaderParser(policy=compat32).parsebytes(
            inline_copy.lstrip("\r\n").encode("utf-8", "replace")
        )

    recipient = _first_address(failed_header) or _recipient_in(report_text)
    if recipient is None:
        recipient = _first_address(_header(original, "To"))
    if recipient is None:
        recipient = _some_address(report_text, exclude=_own_addresses(message))

    status, code, diagnostic = _codes(report_text)
    hard: bool | None
    if status:
        hard = status[0] == "5"
    elif code:
        hard = code[0] == "5"
    elif _TEMPORARY.search(subject) or _TEMPORARY.search(report_text):
        hard = False
    elif _PERMANENT.search(report_text) or _PERMANENT.search(subject):
        hard = True
    else:
        hard = None
    return FeedbackReport(
        kind="bounce",
        hard=hard,
        recipient=recipient,
        verp_token=envelope_token
        or _token_from_headers(message, prefix)
        or _token_from_original(original, prefix),
        original_message_id=_message_id(_header(original, "Message-ID")),
        status=status,
        diagnostic=diagnostic,
        mailing_id=_header(original, "X-Tidings-Mailing"),
    )


# -- helpers -----------------------------------------------------------------------------


def _find_part(message: Message, types: Iterable[str]) -> Message | None:
    """The first part of one of ``types``, not looking inside attached messages."""
    wanted = tuple(types)
    stack = [message]
    while stack:
        part = stack.pop(0)
        ctype = part.get_content_type()
        if ctype in wanted:
            return part
        if part.is_multipart() and part.get_content_maintype() == "multipart":
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
    return None


def _action(block: dict[str, str]) -> str:
    return (block.get("action", "").split() or [""])[0].lower()


def _fields(items: Iterable[tuple[str, object]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, value in items:
        out.setdefault(name.strip().lower(), _clean(str(value)) or "")
    return out


def _text_blocks(text: str) -> list[dict[str, str]]:
    blocks: list[dict[str, str]] = []
    for chunk in re.split(r"\r?\n[ \t]*\r?\n", text):
        if not chunk.strip():
            continue
        parsed = BytesHeaderParser(policy=compat32).parsebytes(
            chunk.strip("\r\n").encode("utf-8", "replace") + b"\n"
        )
        fields = _fields(parsed.items())
        if fields:
            blocks.append(fields)
    return blocks


def _field_blocks(part: Message) -> list[dict[str, str]]:
    """The ``Name: value`` blocks of a delivery-status or feedback-report part, keys lowercased."""
    payload = part.get_payload()
    if isinstance(payload, list):
        blocks: list[dict[str, str]] = []
        for sub in payload:
            if not isinstance(sub, Message):
                continue
            fields = _fields(sub.items())
            if fields:
                blocks.append(fields)
            rest = sub.get_payload()
            if isinstance(rest, str) and rest.strip():
                blocks.extend(_text_blocks(rest))
        return blocks
    data = part.get_payload(decode=True)
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else str(payload)
    return _text_blocks(text)


def _original_headers(message: Message) -> Message | None:
    """The headers of the original message included in the report, if any."""
    part = _find_part(
        message,
        ("message/rfc822", "message/global", "text/rfc822-headers", "message/global-headers"),
    )
    if part is None:
        return None
    payload = part.get_payload()
    if isinstance(payload, list):
        inner = payload[0] if payload and isinstance(payload[0], Message) else None
        return inner
    data = part.get_payload(decode=True)
    if not isinstance(data, bytes):
        data = str(payload).encode("utf-8", "replace")
    return BytesHeaderParser(policy=compat32).parsebytes(data.lstrip(b"\r\n"))


def _report_text(message: Message) -> str:
    """The text/plain content of the bounce, outside any attached original."""
    texts: list[str] = []
    stack = [message]
    while stack:
        part = stack.pop(0)
        if part.get_content_maintype() == "multipart":
            stack.extend(p for p in part.get_payload() if isinstance(p, Message))
        elif part.get_content_type() == "text/plain" or part is message:
            data = part.get_payload(decode=True)
            if isinstance(data, bytes):
                charset = part.get_content_charset() or "utf-8"
                try:
                    texts.append(data.decode(charset, "replace"))
                except LookupError:
                    texts.append(data.decode("utf-8", "replace"))
    return "\n".join(texts)


def _header(message: Message | None, name: str) -> str | None:
    if message is None:
        return None
    value = message.get(name)
    if value is None:
        return None
    text = _clean(str(value))
    return text or None


def _clean(value: str | None) -> str | None:
    if value is None:
        return None
    text = _WS.sub(" ", value).strip()
    return text[:1000] if text else None


def _after_type(value: str | None) -> str | None:
    """``smtp; 550 ...`` without its type prefix."""
    if value is None:
        return None
    kind, sep, rest = value.partition(";")
    return rest if sep and " " not in kind.strip() else value


def _address(value: str | None) -> str | None:
    """The address of ``rfc822; user@example.com`` (or ``<user@example.com>``)."""
    if not value:
        return None
    text = _after_type(value) or ""
    text = text.strip().strip("<>").strip()
    return text if "@" in text and " " not in text else _first_address(text)


def _first_address(value: str | None) -> str | None:
    if not value:
        return None
    for _name, address in getaddresses([value]):
        if "@" in address:
            return address.strip()
    return None


def _recipient_in(text: str) -> str | None:
    for pattern in _RECIPIENT_PATTERNS:
        found = pattern.search(text)
        if found:
            return found.group(1).strip().rstrip(".:>")
    return None


def _own_addresses(message: Message) -> set[str]:
    own: set[str] = set()
    for name in ("From", "To", "Cc", "Reply-To", "Sender", "Delivered-To", "Envelope-To"):
        for _display, address in getaddresses([str(v) for v in message.get_all(name, [])]):
            own.add(address.lower())
    return own


def _some_address(text: str, *, exclude: set[str]) -> str | None:
    for found in _ADDRESS.finditer(text):
        address = found.group(0).rstrip(".")
        local = address.split("@")[0].lower()
        if address.lower() in exclude or local in _DAEMONS or "+" in local and "bounce" in local:
            continue
        return address
    return None


def _join_reply_lines(diagnostic: str | None) -> str | None:
    """An unfolded multi-line reply, ``550-5.1.1 a 550 5.1.1 b``, as ``550 5.1.1 a b``."""
    if not diagnostic:
        return diagnostic
    head = re.match(r"([45]\d\d)[ -](?:([245]\.\d{1,3}\.\d{1,3})\s+)?", diagnostic)
    if head is None:
        return diagnostic
    code, status = head.group(1), head.group(2)
    repeat = rf"\s{code}[ -]" + (rf"(?:{re.escape(status)}\s+)?" if status else "")
    rest = re.sub(repeat, " ", diagnostic[head.end() :])
    return _clean(f"{code} {status + ' ' if status else ''}{rest}")


def _first_smtp_code(text: str) -> str | None:
    found = _SMTP_CODE.search(text)
    return found.group(1) if found else None


def _codes(text: str) -> tuple[str | None, str | None, str | None]:
    """``(status, smtp_code, diagnostic line)`` of the first failure code in a bounce text."""
    for line in text.splitlines():
        status = _FAIL_STATUS.search(line)
        code = _SMTP_CODE.search(line)
        if status or code:
            diagnostic = _clean(line.split("said:", 1)[-1])
            return (
                status.group(1) if status else None,
                code.group(1) if code else None,
                diagnostic,
            )
    return None, None, None


def _message_id(value: str | None) -> str | None:
    if not value:
        return None
    text = value.strip().split()[0] if value.strip() else ""
    if not text:
        return None
    return text if text.startswith("<") else f"<{text.strip('<>')}>"


def _token_from_headers(message: Message, prefix: str) -> str | None:
    for name in ("To", "Delivered-To", "X-Original-To", "Envelope-To"):
        for value in message.get_all(name, []):
            token = verp_token(str(value), prefix=prefix)
            if token:
                return token
    return None


def _token_from_original(original: Message | None, prefix: str) -> str | None:
    if original is None:
        return None
    for name in ("Return-Path", "Sender"):
        token = verp_token(_header(original, name), prefix=prefix)
        if token:
            return token
    return None
