from __future__ import annotations

import re
import smtplib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tidings.errors import InvalidInput
from tidings.feedback.inbound import BounceListener, parse_listen
from tidings.feedback.reports import FeedbackReport

FIXTURES = Path(__file__).parent.parent / "fixtures" / "reports"


def fixture(name: str) -> bytes:
    """A fixture with CRLF line endings, as it travels over SMTP."""
    return re.sub(rb"\r?\n", b"\r\n", (FIXTURES / name).read_bytes())


class Recorder:
    """An ``on_report`` callback that keeps what it got and can be told to fail."""

    def __init__(self) -> None:
        self.calls: list[tuple[FeedbackReport, bytes]] = []
        self.fail_for: set[str] = set()
        self.threads: set[str] = set()

    def __call__(self, report: FeedbackReport, raw: bytes) -> None:
        self.threads.add(threading.current_thread().name)
        self.calls.append((report, raw))
        if report.recipient in self.fail_for:
            raise RuntimeError("the database is down")

    @property
    def reports(self) -> list[FeedbackReport]:
        return [report for report, _ in self.calls]


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def listener(recorder: Recorder) -> Iterator[BounceListener]:
    with BounceListener("127.0.0.1", 0, recorder, max_size=64 * 1024) as running:
        yield running


def send(listener: BounceListener, raw: bytes, *, to: str, sender: str = "") -> dict:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        return client.sendmail(sender, [to], raw)


def test_a_dsn_and_an_arf_report_reach_the_callback(
    listener: BounceListener, recorder: Recorder
) -> None:
    dsn = fixture("dsn_postfix_hard.eml")
    arf = fixture("arf_abuse.eml")

    send(listener, dsn, to="bounces+k7q2m9x4@shop.example")
    send(listener, arf, to="fbl@shop.example", sender="feedback@arf.mail.yahoo.example")

    assert recorder.calls == [
        (
            FeedbackReport(
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
            ),
            dsn,
        ),
        (
            FeedbackReport(
                kind="complaint",
                hard=None,
                recipient="annoyed@yahoo.example",
                verp_token="c0m9l4n2",
                original_message_id="<m43.c2001@shop.example>",
                status=None,
                diagnostic="abuse report from Yahoo!-Mail-Feedback/2.0",
                mailing_id="43",
            ),
            arf,
        ),
    ]
    assert (listener.received, listener.reports, listener.dropped, listener.failed) == (2, 2, 0, 0)


def test_the_envelope_verp_token_attributes_a_bounce_whose_body_names_nothing(
    listener: BounceListener, recorder: Recorder
) -> None:
    mangled = (
        b"From: MAILER-DAEMON@mx.example\r\nSubject: Undelivered Mail Returned to Sender\r\n"
        b"\r\nSomething went wrong.\r\n"
    )

    send(listener, mangled, to="bounces+m4ngl3d@shop.example")

    assert [(r.kind, r.verp_token, r.recipient) for r in recorder.reports] == [
        ("bounce", "m4ngl3d", None)
    ]


def test_after_junk_and_a_failing_callback_the_listener_still_takes_the_next_report(
    listener: BounceListener, recorder: Recorder
) -> None:
    recorder.fail_for.add("gone@hosting.example")

    junk = send(listener, fixture("junk_reply.eml"), to="bounces+k7q2m9x4@shop.example")
    noise = send(listener, b"\x00\xff\xfe garbage\r\n", to="anything@shop.example")
    failing = send(listener, fixture("exim_hard.eml"), to="bounces+x1m2h3d4@shop.example")
    after = send(listener, fixture("qmail_hard.eml"), to="bounces+q8m1a2i3@shop.example")

    assert junk == noise == failing == after == {}  # every one answered 250
    assert [r.recipient for r in recorder.reports] == [
        "gone@hosting.example",
        "missing@oldisp.example",
    ]
    assert (listener.received, listener.reports, listener.dropped, listener.failed) == (4, 1, 2, 1)


def test_several_messages_in_one_session_are_each_reported(
    listener: BounceListener, recorder: Recorder
) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.sendmail("", ["bounces+d4y7t2r5@shop.example"], fixture("dsn_delayed.eml"))
        client.sendmail("", ["bounces+s5u8c3e1@shop.example"], fixture("dsn_delivered.eml"))

    assert [(r.kind, r.hard, r.verp_token) for r in recorder.reports] == [
        ("bounce", False, "d4y7t2r5"),
        ("delivered", None, "s5u8c3e1"),
    ]


def test_the_callback_runs_off_the_event_loop_in_one_worker_thread(
    listener: BounceListener, recorder: Recorder
) -> None:
    for _ in range(3):
        send(listener, fixture("dsn_delayed.eml"), to="bounces+d4y7t2r5@shop.example")

    assert len(recorder.threads) == 1
    assert next(iter(recorder.threads)).startswith("tidings-bounces")


def test_a_message_over_the_size_limit_is_refused_and_the_listener_goes_on(
    listener: BounceListener, recorder: Recorder
) -> None:
    huge = fixture("dsn_postfix_hard.eml") + b"x" * 70 + (b"\r\n" + b"x" * 70) * 1000

    # A client that announces the size is refused at MAIL FROM ...
    with pytest.raises(smtplib.SMTPSenderRefused) as announced:
        send(listener, huge, to="bounces+k7q2m9x4@shop.example")
    # ... one that does not, after DATA.
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.ehlo()
        client.mail("")
        client.rcpt("bounces+k7q2m9x4@shop.example")
        unannounced = client.data(huge)
    send(listener, fixture("dsn_delayed.eml"), to="bounces+d4y7t2r5@shop.example")

    assert announced.value.smtp_code == 552
    assert unannounced[0] == 552
    assert [r.verp_token for r in recorder.reports] == ["d4y7t2r5"]


def test_any_recipient_is_accepted(listener: BounceListener, recorder: Recorder) -> None:
    with smtplib.SMTP("127.0.0.1", listener.port, timeout=10) as client:
        client.ehlo()
        assert client.mail("")[0] == 250
        for address in ("bounces+a@shop.example", "abuse@shop.example", "x@elsewhere.example"):
            assert client.rcpt(address)[0] == 250


def test_a_listener_built_from_the_setting_listens_where_it_says(recorder: Recorder) -> None:
    with BounceListener.from_setting("127.0.0.1:0", recorder) as running:
        assert running.host == "127.0.0.1" and running.port > 0
        send(running, fixture("arf_redacted.eml"), to="fbl@shop.example")
    assert [r.kind for r in recorder.reports] == ["complaint"]


@pytest.mark.parametrize(
    ("value", "parsed"),
    [
        ("0.0.0.0:2525", ("0.0.0.0", 2525)),
        ("[::1]:25", ("::1", 25)),
        ("localhost:25", ("localhost", 25)),
    ],
)
def test_parse_listen_reads_host_and_port(value: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(value) == parsed


@pytest.mark.parametrize("value", ["2525", ":25", "host:port", "host:70000"])
def test_parse_listen_refuses_what_is_not_host_and_port(value: str) -> None:
    with pytest.raises(InvalidInput):
        parse_listen(value)
