"""A real mailing through an SMTP server that misbehaves (``tests/faultysmtp.py``), on
both databases: refused at the greeting (421), 451 after DATA, the link dropped
half-way through a body, a server that stalls past ``TIDINGS_SMTP_TIMEOUT``, a
TLS handshake that fails, a slow reader.

What each test counts at the server: which recipients got their message and how
often (never twice), and when the worker came back (the pauses between attempts
double from 0.5 s; the worker's own pauses are recorded and compared with the
times the server saw, which can only be later, so nothing here depends on how
fast the machine is). Deferred messages stop the mailing with ``technical_error``
after ``TIDINGS_SMTP_RETRY_FOR``; Resume after the server recovers sends the rest,
each once; a message whose body went out before the link broke is ``unknown`` and
is never sent again.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tests.faultysmtp import FaultySmtp
from tests.smtpserver import tls_context
from tidings.engine.worker import FIRST_RETRY_DELAY, Worker
from tidings.services.sending import make_worker
from tidings.store.tables import messages
from tidings.transports.base import Envelope, Result
from tidings.transports.smtp import SmtpTransport

#: Long enough for two or three attempts (0 s, 0.5 s, 1.5 s), short enough for a test.
RETRY_FOR = 1.2
DOUBLING = [FIRST_RETRY_DELAY * 2 ** i for i in range(10)]


@pytest.fixture
def faulty() -> Iterator[Any]:
    servers: list[FaultySmtp] = []

    def make(**kw: Any) -> FaultySmtp:
        server = FaultySmtp(**kw).start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> Any:
    folder: Path = tmp_path_factory.mktemp("tls")
    return tls_context(folder)


def pausing_worker(ctx: Any) -> tuple[Worker, list[float]]:
    """A worker that records each pause it makes between attempts (and does make it)."""
    worker = make_worker(ctx)
    pauses: list[float] = []

    def sleep(seconds: float) -> None:
        pauses.append(seconds)
        time.sleep(seconds)

    worker.sleep = sleep
    return worker, pauses


def assert_backoff(pauses: Sequence[float], attempts: Sequence[float], per_round: int) -> None:
    """The worker paused 0.5 s, 1 s, 2 s ... between rounds (not a busy loop), each
    round reached the server ``per_round`` times (``attempts``: when, by the server's
    clock), and no round started before the pause before it was over."""
    assert pauses, "the worker never paused between attempts"
    assert list(pauses) == pytest.approx(DOUBLING[:len(pauses)], abs=0.05)
    attempts = sorted(attempts)
    assert len(attempts) == per_round * (len(pauses) + 1)
    rounds = [attempts[i:i + per_round] for i in range(0, len(attempts), per_round)]
    for before, after, pause in zip(rounds, rounds[1:], pauses, strict=False):
        assert min(after) - max(before) >= pause - 0.05


def assert_once_each(server: FaultySmtp, expected: Sequence[str]) -> None:
    counts = server.delivered_counts()
    assert [r for r, n in counts.items() if n > 1] == []
    assert sorted(counts) == sorted(expected)


def statuses(ctx: Any, mailing_id: int) -> dict[str, tuple[str, str | None]]:
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(messages.c.address, messages.c.status, messages.c.error)
                            .where(messages.c.mailing_id == mailing_id)).all()
    return {address: (status, error) for address, status, error in rows}


def start(ctx: Any, api: Any, n: int) -> int:
    mid = int(draft_mailing(api, numbered(n))["mailing"]["id"])
    api.ok("POST", f"/mailings/{mid}/send")
    return mid


def interrupted(api: Any, mid: int) -> str:
    """The mailing stopped for a technical error; its message, which speaks to the manager."""
    stopped = api.ok("GET", f"/mailings/{mid}")
    assert stopped["status"] == "interrupted", stopped
    assert stopped["interrupt_reason"]["code"] == "technical_error"
    message: str = stopped["interrupt_reason"]["message"]
    assert message.startswith("Sending through SMTP server 127.0.0.1:")
    assert message.endswith("Fix the mail server, then resume: messages already sent will not be repeated.")
    assert "b'" not in message and "(4" not in message  # no Python reprs of replies
    return message


def resume_and_finish(ctx: Any, api: Any, mid: int) -> dict[str, Any]:
    api.ok("POST", f"/mailings/{mid}/resume")
    make_worker(ctx).run_until_idle()
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent", done
    return done


@pytest.mark.parametrize("at", ["greeting", "ehlo"])
def test_421_at_the_greeting_backs_off_then_technical_error_and_resume_sends_each_once(
    make_ctx, api_for, faulty, at
):
    server = faulty()
    if at == "greeting":
        server.refuse = "421 4.3.2 Service not available, try later"
    else:
        server.refuse_ehlo = "421 4.3.2 Service not available, try later"
    ctx = make_ctx(smtp_url=server.url, smtp_connections=2, smtp_retry_for=RETRY_FOR)
    api = api_for(ctx)
    mid = start(ctx, api, 6)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    message = interrupted(api, mid)
    refused = f"SMTP server 127.0.0.1:{server.port} refused the connection: 421 4.3.2 Service not available"
    assert refused in message
    progress = api.ok("GET", f"/mailings/{mid}")["progress"]
    assert (progress["sent"], progress["queued"], progress["unknown"]) == (0, 6, 0)
    assert server.delivered == [] and server.rcpts == []
    # One connection per SMTP connection a round, not one per message.
    assert_backoff(pauses, server.connection_times(), per_round=2)

    server.refuse = server.refuse_ehlo = None
    done = resume_and_finish(ctx, api, mid)
    assert (done["progress"]["sent"], done["progress"]["unknown"]) == (6, 0)
    assert_once_each(server, numbered(6))


def test_a_421_that_clears_within_the_retry_window_sends_everything_once_without_interruption(
    make_ctx, api_for, faulty
):
    server = faulty()
    server.refuse = "421 4.3.2 Busy"
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=30)
    api = api_for(ctx)
    mid = start(ctx, api, 4)
    worker, pauses = pausing_worker(ctx)

    def clear_after_the_second_attempt(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == 2:
            server.refuse = None
        time.sleep(seconds)

    worker.sleep = clear_after_the_second_attempt
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent" and done["progress"]["sent"] == 4
    assert pauses == pytest.approx([0.5, 1.0], abs=0.05)
    assert len(server.connection_times()) == 3  # two refused, the third sent all four
    assert_once_each(server, numbered(4))


def test_a_server_that_goes_down_mid_chunk_is_asked_again_once_not_once_per_message(
    make_ctx, api_for, faulty
):
    """Without PIPELINING each message has its own transaction: when the link drops
    under c001 and the server then refuses connections, the four messages behind it
    share one refused connection, then one pause, then go once each."""
    server = faulty()
    server.pipelining = False
    server.drop_mid_data = {"c001@example.org"}
    server.on_drop = lambda: setattr(server, "refuse", "421 4.3.2 Going down")
    # one chunk of six: a connection takes a chunk at a time, and is asked once a chunk
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=30, send_chunk=6)
    api = api_for(ctx)
    mid = start(ctx, api, 6)
    worker, pauses = pausing_worker(ctx)

    def recover_then_sleep(seconds: float) -> None:
        pauses.append(seconds)
        server.refuse = None
        time.sleep(seconds)

    worker.sleep = recover_then_sleep
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["unknown"]) == (5, 1)
    assert pauses == pytest.approx([0.5], abs=0.05)
    assert len(server.connection_times()) == 3  # the first, one refused, one after the pause
    assert_once_each(server, [a for a in numbered(6) if a != "c001@example.org"])
    assert server.rcpt_counts()["c001@example.org"] == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_connection_the_server_closed_while_idle_is_opened_again_not_taken_for_a_fault(
    make_ctx, api_for, faulty, pipelining
):
    """Between two mailings the server closes the worker's idle connection (a 421,
    then the link goes). The next mailing opens a new one at once: nothing is
    deferred, no pause, no technical_error even with TIDINGS_SMTP_RETRY_FOR=0."""
    server = faulty()
    server.pipelining = pipelining
    server.idle_close = 1.0
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=0)
    api = api_for(ctx)
    first = start(ctx, api, 3)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()
    assert api.ok("GET", f"/mailings/{first}")["status"] == "sent"
    deadline = time.monotonic() + 10
    while not any(c.startswith("421") for c in server.said()):
        assert time.monotonic() < deadline, "the server never closed the idle connection"
        time.sleep(0.02)

    second = int(draft_mailing(api, ["d@example.org"], name="Winter")["mailing"]["id"])
    api.ok("POST", f"/mailings/{second}/send")
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{second}")
    assert done["status"] == "sent", done
    assert (done["progress"]["sent"], done["progress"]["queued"]) == (4, 0)
    assert pauses == []
    assert len(server.connection_times()) == 2
    assert sorted(server.recipients()) == sorted([*numbered(3), *numbered(3), "d@example.org"])


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_451_after_data_requeues_those_messages_only_and_resume_sends_them_once(
    make_ctx, api_for, faulty, pipelining
):
    server = faulty()
    server.pipelining = pipelining
    held = {"c001@example.org", "c004@example.org"}
    server.defer_data = set(held)
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=RETRY_FOR)
    api = api_for(ctx)
    mid = start(ctx, api, 6)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    message = interrupted(api, mid)
    assert " s: 451 4.3.0 Try again later (at end of DATA). Fix the mail server" in message
    progress = api.ok("GET", f"/mailings/{mid}")["progress"]
    assert (progress["sent"], progress["queued"], progress["unknown"]) == (4, 2, 0)
    others = [a for a in numbered(6) if a not in held]
    assert_once_each(server, others)
    state = statuses(ctx, mid)
    assert {a for a, (s, _) in state.items() if s == "queued"} == held
    # Each held message was offered once a round, rounds spaced by the pauses.
    with server.lock:
        offered = [t for t, c in server.timed if c.lower() == "rcpt to:<c001@example.org>"]
    assert_backoff(pauses, offered, per_round=1)
    assert server.rcpt_counts()["c004@example.org"] == len(offered)
    assert [server.rcpt_counts()[a] for a in others] == [1] * 4

    server.defer_data = set()
    done = resume_and_finish(ctx, api, mid)
    assert (done["progress"]["sent"], done["progress"]["queued"]) == (6, 0)
    assert_once_each(server, numbered(6))


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_link_dropped_mid_data_leaves_that_message_unknown_never_resent_and_the_rest_delivered(
    make_ctx, api_for, faulty, pipelining
):
    server = faulty()
    server.pipelining = pipelining
    server.drop_mid_data = {"c002@example.org"}
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=30)
    api = api_for(ctx)
    mid = start(ctx, api, 6)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["unknown"], done["progress"]["queued"]) == (5, 1, 0)
    status, error = statuses(ctx, mid)["c002@example.org"]
    assert status == "unknown"
    assert error is not None and "after the message" in error
    # Pipelined, the messages behind it on that connection were deferred once (their
    # envelope had gone with its body) and sent on a new one; one by one, the next
    # message simply opened a new connection.
    assert pauses == pytest.approx([0.5] if pipelining else [], abs=0.05)
    assert len(server.connection_times()) == 2
    assert_once_each(server, [a for a in numbered(6) if a != "c002@example.org"])
    assert server.rcpt_counts()["c002@example.org"] == 1

    make_worker(ctx).run_until_idle()  # nothing is left to send, the unknown one least of all
    assert server.rcpt_counts()["c002@example.org"] == 1
    assert api.ok("GET", f"/mailings/{mid}")["actions"] == done["actions"]


def test_a_server_that_never_greets_times_out_backs_off_then_technical_error_and_resume_completes(
    make_ctx, api_for, faulty
):
    server = faulty()
    server.stall_greeting = True
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=RETRY_FOR, smtp_timeout=0.3)
    api = api_for(ctx)
    mid = start(ctx, api, 4)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    message = interrupted(api, mid)
    assert f"127.0.0.1:{server.port} did not answer within 0.3 s (TIDINGS_SMTP_TIMEOUT)" in message
    assert api.ok("GET", f"/mailings/{mid}")["progress"]["queued"] == 4
    assert server.rcpts == []
    assert_backoff(pauses, server.connection_times(), per_round=1)

    server.stall_greeting = False
    resume_and_finish(ctx, api, mid)
    assert_once_each(server, numbered(4))


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_server_that_stalls_before_the_body_defers_that_message_and_sends_it_once_later(
    make_ctx, api_for, faulty, pipelining
):
    server = faulty()
    server.pipelining = pipelining
    server.stall_at_rcpt = {"c001@example.org"}
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=30, smtp_timeout=0.3)
    api = api_for(ctx)
    mid = start(ctx, api, 4)
    worker, pauses = pausing_worker(ctx)
    seen: dict[str, tuple[str, str | None]] = {}

    def look_then_recover(seconds: float) -> None:
        pauses.append(seconds)
        seen.update(statuses(ctx, mid))
        server.stall_at_rcpt = set()
        time.sleep(seconds)

    worker.sleep = look_then_recover
    worker.run_until_idle()

    status, error = seen["c001@example.org"]
    assert status == "queued"
    assert error == (f"the SMTP server 127.0.0.1:{server.port} did not answer within 0.3 s "
                     "(TIDINGS_SMTP_TIMEOUT) before the message went out")
    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["unknown"]) == (4, 0)
    assert pauses == pytest.approx([0.5], abs=0.05)
    assert_once_each(server, numbered(4))
    assert server.delivered_counts()["c001@example.org"] == 1


@pytest.mark.parametrize("pipelining", [True, False], ids=["pipelined", "one-by-one"])
def test_a_server_that_stalls_after_the_body_leaves_that_message_unknown_and_never_resent(
    make_ctx, api_for, faulty, pipelining
):
    server = faulty()
    server.pipelining = pipelining
    server.stall_after_data = {"c001@example.org"}
    ctx = make_ctx(smtp_url=server.url, smtp_connections=1, smtp_retry_for=30, smtp_timeout=0.3)
    api = api_for(ctx)
    mid = start(ctx, api, 4)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert (done["progress"]["sent"], done["progress"]["unknown"]) == (3, 1)
    status, error = statuses(ctx, mid)["c001@example.org"]
    assert status == "unknown"
    assert error is not None and "0.3 s" in error
    # The server took it in (its reply was what never came): delivered once, not twice.
    assert_once_each(server, numbered(4))
    assert server.rcpt_counts()["c001@example.org"] == 1
    # Pipelined, the two behind it were deferred once; one by one, they went on a new connection.
    assert pauses == pytest.approx([0.5] if pipelining else [], abs=0.05)
    assert len(server.connection_times()) == 2


TLS_FAULTS = {
    # smtps:// to a server that answers in plain text
    "smtps-handshake": dict(implicit_tls=True),
    # STARTTLS accepted, then no TLS
    "starttls-handshake": dict(starttls=True),
    # STARTTLS not offered at all: no falling back to plain text
    "starttls-not-offered": dict(starttls=True),
}


@pytest.mark.parametrize("fault", list(TLS_FAULTS))
def test_a_tls_failure_sends_nothing_in_plain_text_and_says_tls(make_ctx, api_for, faulty, tls, fault):
    server = faulty(tls=tls, **TLS_FAULTS[fault])
    if fault == "starttls-not-offered":
        server.starttls = False  # the URL still asks for smtp+starttls
        url = f"smtp+starttls://127.0.0.1:{server.port}?verify=false"
    else:
        server.tls_broken = True
        url = server.url
    ctx = make_ctx(smtp_url=url, smtp_connections=1, smtp_retry_for=RETRY_FOR)
    api = api_for(ctx)
    mid = start(ctx, api, 3)
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    message = interrupted(api, mid)
    assert "TLS" in message
    if fault == "starttls-not-offered":
        assert "does not offer STARTTLS" in message
    else:
        assert f"TLS handshake with SMTP server 127.0.0.1:{server.port} failed" in message
    assert "nothing was sent without encryption" in message
    assert not {"MAIL", "RCPT", "DATA"} & set(server.verbs())  # no plain-text fallback
    assert server.delivered == []
    assert_backoff(pauses, server.connection_times(), per_round=1)

    server.tls_broken, server.starttls = False, not server.implicit_tls
    resume_and_finish(ctx, api, mid)
    assert_once_each(server, numbered(3))
    assert server.delivered_over_tls == [True] * 3


def test_a_slow_reader_still_gets_every_message_once(make_ctx, api_for, faulty):
    # A small receive window read 512 bytes at a time: the client's writes wait on it.
    server = faulty(receive_buffer=4096)
    server.read_chunk, server.read_delay = 512, 0.002
    paragraph = "<p>" + "Autumn news from the shop, in some detail. " * 20 + "</p>"
    html = "<p>Hello {{ customer.first_name }}</p>" + paragraph * 40 + "<p>THE END</p>"
    ctx = make_ctx(smtp_url=server.url, smtp_connections=2, smtp_retry_for=30)
    api = api_for(ctx)
    mid = int(draft_mailing(api, numbered(10), html=html)["mailing"]["id"])
    api.ok("POST", f"/mailings/{mid}/send")
    worker, pauses = pausing_worker(ctx)
    worker.run_until_idle()

    done = api.ok("GET", f"/mailings/{mid}")
    assert done["status"] == "sent"
    assert done["progress"] == {"total": 10, "sent": 10, "failed": 0, "skipped": 0, "unknown": 0,
                                "queued": 0, "percent": 100.0}
    assert pauses == []  # nothing was deferred
    assert 1 <= len(server.connection_times()) <= 2  # at most one per connection: none opened again
    assert_once_each(server, numbered(10))
    sizes = collections.Counter(len(m.data) > 30_000 for m in server.delivered)
    assert sizes == {True: 10}
    for received in server.delivered:
        html_part = received.message.get_body(("html",))
        assert html_part is not None and "THE END" in html_part.get_content()


# -- the transport alone, with bodies larger than the kernel's socket buffers ------------

def big_envelope(i: int, megabytes: int) -> Envelope:
    line = b"x" * 998 + b"\r\n"
    data = b"From: shop@shop.example.com\r\nSubject: big\r\n\r\n" + line * (megabytes * 1000)
    return Envelope(message_id=i, mail_from="bounces@shop.example.com", rcpt=f"c{i}@example.org", data=data)


def test_a_link_dropped_while_the_body_is_still_being_written_is_retried_not_unknown(faulty):
    """12 MB cannot all sit in the socket buffers (at most 4 MB here), so when the
    server drops the link after the body's first line the write itself fails: the
    final dot never left, the server cannot have taken the message, and it is
    deferred (sent again later), not uncertain (lost to the manager)."""
    server = faulty(receive_buffer=65536)
    server.drop_mid_data = {"c1@example.org"}
    transport = SmtpTransport(server.url, connections=1, timeout=5)
    try:
        (outcome,) = transport.send([big_envelope(1, 12)])
        assert outcome.result is Result.DEFERRED, outcome
        assert "cannot have taken it" in (outcome.detail or "")
        server.drop_mid_data = set()
        again = transport.send([big_envelope(1, 12), big_envelope(2, 1)])
    finally:
        transport.close()
    assert [o.result for o in again] == [Result.SENT, Result.SENT]
    assert server.delivered_counts() == {"c1@example.org": 1, "c2@example.org": 1}


def test_a_slow_reader_is_not_a_stalled_server_the_timeout_counts_from_the_last_progress(faulty):
    """The first 16 MB of a 20 MB body are read 64 KB every 10 ms, which takes
    longer than the 3 s timeout, but the server reads all the time: the message is
    sent, once. (The rest is read at full speed, so what the kernel buffers after
    the last write, up to 4 MB, is read well within the timeout however busy the
    machine is; a write timed out as a whole, as ``sendall`` does, gave up.)"""
    server = faulty(receive_buffer=65536)
    server.read_chunk, server.read_delay, server.slow_bytes = 65536, 0.01, 16_000_000
    transport = SmtpTransport(server.url, connections=1, timeout=3)
    envelope = big_envelope(1, 20)
    try:
        (outcome,) = transport.send([envelope])
    finally:
        transport.close()
    assert outcome.result is Result.SENT, outcome
    assert server.delivered_counts() == {"c1@example.org": 1}
    assert server.delivered[0].data == envelope.data


def test_starttls_refused_by_the_server_is_deferred_saying_so_and_nothing_goes_in_plain_text(faulty, tls):
    server = faulty(starttls=True, tls=tls)
    server.refuse_starttls = "454 4.7.0 TLS not available due to temporary reason"
    transport = SmtpTransport(server.url, connections=1, timeout=5)
    try:
        outcomes = transport.send([big_envelope(1, 0), big_envelope(2, 0)])
    finally:
        transport.close()
    assert [o.result for o in outcomes] == [Result.DEFERRED, Result.DEFERRED]
    assert outcomes[0].detail == (
        f"TLS handshake with SMTP server 127.0.0.1:{server.port} failed: it answered STARTTLS with "
        "454 4.7.0 TLS not available due to temporary reason; nothing was sent without encryption")
    assert server.verbs() == ["EHLO", "STARTTLS"]  # one connection for both, and no MAIL
    assert len(server.connection_times()) == 1
