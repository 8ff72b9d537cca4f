from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tidings.errors import InvalidInput
from tidings.feedback.reports import FeedbackReport, make_verp_address, parse_report, verp_token

FIXTURES = Path(__file__).parent.parent / "fixtures" / "reports"


def fixture(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


# -- RFC 3464 delivery status notifications ------------------------------------------------


def test_a_postfix_dsn_for_an_unknown_user_is_a_hard_bounce() -> None:
    assert parse_report(fixture("dsn_postfix_hard.eml")) == FeedbackReport(
        kind="bounce",
        hard=True,
        recipient="nobody@customer.example",
        verp_token="k7q2m9x4",
        original_message_id="<m42.c1001@shop.example>",
        status="5.1.1",
        diagnostic=(
            "550 5.1.1 <nobody@customer.example>: Recipient address rejected: "
            "User unknown in virtual mailbox table"
        ),
        mailing_id="42",
    )


def test_a_gmail_dsn_joins_the_lines_of_a_multi_line_reply() -> None:
    report = parse_report(fixture("dsn_gmail_hard.eml"))

    assert report is not None
    assert (report.kind, report.hard, report.recipient, report.status) == (
        "bounce",
        True,
        "no.such.person@gmail.com",
        "5.1.1",
    )
    assert report.diagnostic is not None
    assert report.diagnostic.startswith(
        "550 5.1.1 The email account that you tried to reach does not exist. Please try "
        "double-checking"
    )
    assert (report.verp_token, report.original_message_id, report.mailing_id) == (
        "p3n8w1c6",
        "<m42.c1002@shop.example>",
        "42",
    )


def test_a_delayed_dsn_is_a_soft_bounce() -> None:
    assert parse_report(fixture("dsn_delayed.eml")) == FeedbackReport(
        kind="bounce",
        hard=False,
        recipient="slow@isp.example",
        verp_token="d4y7t2r5",
        original_message_id="<m42.c1003@shop.example>",
        status="4.4.1",
        diagnostic="451 4.4.1 Try again later",
        mailing_id="42",
    )


def test_a_failed_dsn_with_a_4xx_status_is_a_soft_bounce() -> None:
    assert parse_report(fixture("dsn_expired.eml")) == FeedbackReport(
        kind="bounce",
        hard=False,
        recipient="full@isp.example",
        verp_token="e9x2p4i7",
        original_message_id=None,
        status="4.2.2",
        diagnostic="452 4.2.2 Mailbox full",
        mailing_id=None,
    )


def test_a_delivered_dsn_is_a_delivery() -> None:
    assert parse_report(fixture("dsn_delivered.eml")) == FeedbackReport(
        kind="delivered",
        hard=None,
        recipient="happy@customer.example",
        verp_token="s5u8c3e1",
        original_message_id="<m42.c1004@shop.example>",
        status="2.0.0",
        diagnostic="250 2.0.0 Ok: queued as 4Tq9Zc2",
        mailing_id="42",
    )


def dsn(*recipient_blocks: str, headers: str = "") -> bytes:
    blocks = "\n\n".join(recipient_blocks)
    return (
        "From: MAILER-DAEMON@mx.example\n"
        "To: bounces+t0k3n@shop.example\n"
        "Subject: Delivery report\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\n\n'
        "--b\nContent-Type: text/plain\n\nSee below.\n\n"
        "--b\nContent-Type: message/delivery-status\n\n"
        f"Reporting-MTA: dns; mx.example\n\n{blocks}\n\n"
        + (f"--b\nContent-Type: text/rfc822-headers\n\n{headers}\n\n" if headers else "")
        + "--b--\n"
    ).encode()


def test_with_several_recipients_the_failure_is_reported() -> None:
    raw = dsn(
        "Final-Recipient: rfc822; ok@x.example\nAction: delivered\nStatus: 2.0.0",
        "Final-Recipient: rfc822; late@x.example\nAction: delayed\nStatus: 4.0.0",
        "Final-Recipient: rfc822; dead@x.example\nAction: failed\nStatus: 5.1.2",
    )
    report = parse_report(raw)
    assert report is not None
    assert (report.kind, report.hard, report.recipient, report.status) == (
        "bounce",
        True,
        "dead@x.example",
        "5.1.2",
    )


def test_the_original_recipient_is_preferred_to_the_final_one() -> None:
    raw = dsn(
        "Original-Recipient: rfc822;Ada@Shop-Customer.example\n"
        "Final-Recipient: rfc822; ada.forwarded@elsewhere.example\n"
        "Action: failed\nStatus: 5.2.1"
    )
    report = parse_report(raw)
    assert report is not None and report.recipient == "Ada@Shop-Customer.example"


def test_a_failed_dsn_without_status_takes_the_severity_from_the_diagnostic() -> None:
    soft = parse_report(
        dsn("Final-Recipient: rfc822; a@x.example\nAction: failed\nDiagnostic-Code: smtp; 421 busy")
    )
    unknown = parse_report(dsn("Final-Recipient: rfc822; a@x.example\nAction: failed"))
    assert soft is not None and (soft.hard, soft.status) == (False, None)
    assert unknown is not None and (unknown.kind, unknown.hard) == ("bounce", True)


def test_a_relayed_dsn_is_not_acted_on() -> None:
    raw = dsn("Final-Recipient: rfc822; a@x.example\nAction: relayed\nStatus: 2.0.0")
    assert parse_report(raw) is None


def test_the_envelope_verp_token_wins_over_the_headers() -> None:
    report = parse_report(
        fixture("dsn_postfix_hard.eml"),
        envelope_recipients=["postmaster@shop.example", "BOUNCES+env123@shop.example"],
    )
    assert report is not None and report.verp_token == "env123"


def test_without_a_verp_recipient_the_token_comes_from_the_original_return_path() -> None:
    raw = fixture("dsn_delayed.eml").replace(
        b"To: bounces+d4y7t2r5@shop.example", b"To: shop@shop.example"
    )
    report = parse_report(raw)
    assert report is not None and report.verp_token == "d4y7t2r5"


# -- RFC 5965 complaints -------------------------------------------------------------------


def test_an_arf_abuse_report_is_a_complaint() -> None:
    assert parse_report(fixture("arf_abuse.eml")) == FeedbackReport(
        kind="complaint",
        hard=None,
        recipient="annoyed@yahoo.example",
        verp_token="c0m9l4n2",
        original_message_id="<m43.c2001@shop.example>",
        status=None,
        diagnostic="abuse report from Yahoo!-Mail-Feedback/2.0",
        mailing_id="43",
    )


def test_a_redacted_arf_report_is_attributed_through_the_original_headers() -> None:
    assert parse_report(fixture("arf_redacted.eml")) == FeedbackReport(
        kind="complaint",
        hard=None,
        recipient="redacted@hotmail.example",
        verp_token="r3d4c7d8",
        original_message_id="<m43.c2002@shop.example>",
        status=None,
        diagnostic="abuse report from Hotmail FBL",
        mailing_id="43",
    )


def test_a_dmarc_failure_report_is_not_a_complaint() -> None:
    assert parse_report(fixture("arf_auth_failure.eml")) is None


# -- non-standard bounces ------------------------------------------------------------------


def test_an_exim_bounce_is_a_hard_bounce_with_the_original_headers() -> None:
    assert parse_report(fixture("exim_hard.eml")) == FeedbackReport(
        kind="bounce",
        hard=True,
        recipient="gone@hosting.example",
        verp_token="x1m2h3d4",
        original_message_id="<m42.c1005@shop.example>",
        status="5.1.1",
        diagnostic=("550 5.1.1 <gone@hosting.example>: Recipient address rejected: User unknown"),
        mailing_id="42",
    )


def test_an_exim_bounce_without_x_failed_recipients_names_the_address_from_its_text() -> None:
    raw = fixture("exim_hard.eml").replace(b"X-Failed-Recipients: gone@hosting.example\n", b"")
    report = parse_report(raw)
    assert report is not None and (report.recipient, report.hard) == ("gone@hosting.example", True)


def test_an_exim_delay_warning_is_a_soft_bounce() -> None:
    raw = fixture("exim_delay.eml").replace(b"X-Failed-Recipients: later@hosting.example\n", b"")
    assert parse_report(raw) == FeedbackReport(
        kind="bounce",
        hard=False,
        recipient="later@hosting.example",
        verp_token="w4r5n6g7",
        original_message_id=None,
        status="4.7.1",
        diagnostic="451 4.7.1 Greylisted, please try again later",
        mailing_id=None,
    )


def test_a_qmail_bounce_is_a_hard_bounce() -> None:
    assert parse_report(fixture("qmail_hard.eml")) == FeedbackReport(
        kind="bounce",
        hard=True,
        recipient="missing@oldisp.example",
        verp_token="q8m1a2i3",
        original_message_id="<m42.c1006@shop.example>",
        status="5.1.1",
        diagnostic="Sorry, no mailbox here by that name. (#5.1.1)",
        mailing_id="42",
    )


def test_a_qmail_bounce_keeps_what_the_remote_host_said() -> None:
    report = parse_report(fixture("qmail_remote.eml"))
    assert report is not None
    assert (report.recipient, report.status, report.diagnostic) == (
        "closed@partner.example",
        "5.2.1",
        "550 5.2.1 <closed@partner.example>... Mailbox disabled for this recipient",
    )


def test_a_gmail_like_text_bounce_is_attributed_through_the_attached_original() -> None:
    assert parse_report(fixture("gmail_text.eml")) == FeedbackReport(
        kind="bounce",
        hard=True,
        recipient="someone@blocked.example",
        verp_token="g5m4l3t2",
        original_message_id="<m42.c1008@shop.example>",
        status="5.7.1",
        diagnostic="554 5.7.1 Message rejected due to content restrictions",
        mailing_id="42",
    )


def test_a_bounce_with_a_mangled_body_is_still_attributed_by_the_envelope() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n%%%% not base64 \xff\xfe"
    )
    assert parse_report(raw, envelope_recipients=["bounces+m4ngl3d@shop.example"]) == (
        FeedbackReport(
            kind="bounce",
            hard=None,
            recipient=None,
            verp_token="m4ngl3d",
            original_message_id=None,
            status=None,
            diagnostic=None,
        )
    )


def test_a_text_bounce_without_codes_takes_its_severity_from_the_wording() -> None:
    def bounce(text: str) -> FeedbackReport | None:
        return parse_report(
            b"From: postmaster@mx.example\nSubject: Delivery failure\n\n" + text.encode(),
            envelope_recipients=["bounces+t@shop.example"],
        )

    permanent = bounce("Your message could not be delivered to x@y.example: user unknown.")
    temporary = bounce("Delivery to x@y.example is delayed; we will retry for 3 days.")
    assert permanent is not None and (permanent.recipient, permanent.hard) == ("x@y.example", True)
    assert temporary is not None and (temporary.recipient, temporary.hard) == ("x@y.example", False)


# -- junk ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["junk_reply.eml", "junk_auto_reply.eml"])
def test_replies_and_auto_replies_are_not_reports(name: str) -> None:
    assert (
        parse_report(fixture(name), envelope_recipients=["bounces+k7q2m9x4@shop.example"]) is None
    )


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"   \r\n",
        b"\x00\x01\x02\xff",
        b"not an email at all",
        b"Content-Type: multipart/report; report-type=delivery-status; boundary=x\n\n--x--",
        b"Content-Type: multipart/report; report-type=feedback-report; boundary=x\n\n"
        b"--x\nContent-Type: message/feedback-report\n\n--x--",
        b"Content-Type: multipart/report; boundary=\n\n" + b"--\n" * 1000,
        b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\nnothing useful here",
    ],
)
def test_junk_is_none_not_an_exception(raw: bytes) -> None:
    assert parse_report(raw) is None


def test_a_value_that_is_not_bytes_is_none() -> None:
    assert parse_report("From: x\n\nhello") is None  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=2000))
def test_parse_report_never_raises_on_arbitrary_bytes(raw: bytes) -> None:
    result = parse_report(raw, envelope_recipients=["bounces+x@shop.example"])
    assert result is None or isinstance(result, FeedbackReport)


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=1500), st.sampled_from(["dsn_postfix_hard.eml", "arf_abuse.eml"]))
def test_parse_report_never_raises_on_damaged_reports(noise: str, name: str) -> None:
    raw = fixture(name)
    cut = len(noise) % len(raw)
    damaged = raw[:cut] + noise.encode("utf-8", "surrogatepass") + raw[cut:]
    result = parse_report(damaged)
    assert result is None or isinstance(result, FeedbackReport)


# -- VERP addresses ------------------------------------------------------------------------


def test_a_verp_address_gives_back_its_token() -> None:
    address = make_verp_address(token="m42.c1001-x_y", domain="shop.example")
    assert address == "bounces+m42.c1001-x_y@shop.example"
    assert verp_token(address) == "m42.c1001-x_y"
    assert verp_token(f"Shop Bounces <{address}>") == "m42.c1001-x_y"


def test_a_verp_token_survives_srs_rewriting_by_a_forwarder() -> None:
    srs = "SRS0=HHH=TT=shop.example=bounces+k7q2m9x4@forwarder.example"
    assert verp_token(srs) == "k7q2m9x4"


def test_addresses_that_are_not_verp_give_no_token() -> None:
    assert verp_token("news@shop.example") is None
    assert verp_token("notbounces+x@shop.example") is None
    assert verp_token(None) is None
    assert verp_token("fbl+x@shop.example", prefix="fbl") == "x"


@pytest.mark.parametrize("token", ["", "has space", "a@b", "-lead", "a+b"])
def test_a_token_that_cannot_be_part_of_an_address_is_refused(token: str) -> None:
    with pytest.raises(InvalidInput):
        make_verp_address(token=token, domain="shop.example")


def test_a_customer_reply_about_a_delivery_is_not_a_bounce() -> None:
    raw = (
        b"From: Ada <ada@customer.example>\r\nSubject: Re: Delivery failure of my order?\r\n\r\n"
        b"My parcel could not be delivered to ada@customer.example, code 550. Please help.\r\n"
    )
    assert parse_report(raw, envelope_recipients=["bounces+k7q2m9x4@shop.example"]) is None
