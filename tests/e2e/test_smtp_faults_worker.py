"""A real ``tidings worker`` process, configured only through its environment,
against an SMTP server that stalls (``tests/faultysmtp.py``): it backs off,
interrupts the mailing with ``technical_error`` after ``TIDINGS_SMTP_RETRY_FOR``
naming ``TIDINGS_SMTP_TIMEOUT``, and after Resume (through the API, while it
keeps running) sends every message once."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from typing import Any

import pytest

from tests.builders import draft_mailing, numbered
from tests.e2e.test_crash import TIDINGS, worker_env
from tests.faultysmtp import FaultySmtp

pytestmark = pytest.mark.slow


def wait_until(check: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while not (found := check()):
        assert time.monotonic() < deadline, f"never {what}"
        time.sleep(0.05)
    return found


def test_a_worker_process_backs_off_a_stalled_server_interrupts_and_finishes_after_resume(
    db_url, make_ctx, api_for, tmp_path
):
    server = FaultySmtp().start()
    server.stall_greeting = True
    ctx = make_ctx(smtp_url=server.url)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(6))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    env = {**worker_env(db_url, server.url, tmp_path), "TIDINGS_SMTP_TIMEOUT": "0.3",
           "TIDINGS_SMTP_RETRY_FOR": "1", "TIDINGS_WORKER_LEASE": "60"}
    proc = subprocess.Popen([TIDINGS, "worker"], env=env, cwd=tmp_path,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        def stopped() -> dict[str, Any] | None:
            assert proc.poll() is None, proc.communicate()[1]
            mailing = api.ok("GET", f"/mailings/{mid}")
            return mailing if mailing["status"] == "interrupted" else None

        mailing = wait_until(stopped, "interrupted")
        assert mailing["interrupt_reason"]["code"] == "technical_error"
        assert (f"the SMTP server 127.0.0.1:{server.port} did not answer within 0.3 s "
                "(TIDINGS_SMTP_TIMEOUT)") in mailing["interrupt_reason"]["message"]
        assert mailing["progress"]["queued"] == 6 and server.rcpts == []
        # Two connections a round (TIDINGS_SMTP_CONNECTIONS=2), rounds at least 0.5 s,
        # then 1 s apart: two or three rounds fit in TIDINGS_SMTP_RETRY_FOR=1, never more.
        times = server.connection_times()
        assert len(times) in (4, 6), times
        rounds = [times[i:i + 2] for i in range(0, len(times), 2)]
        for before, after, pause in zip(rounds, rounds[1:], [0.5, 1.0], strict=False):
            assert min(after) - max(before) >= pause - 0.05

        server.stall_greeting = False
        api.ok("POST", f"/mailings/{mid}/resume")
        wait_until(lambda: api.ok("GET", f"/mailings/{mid}")["status"] == "sent", "sent")
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        server.stop()
    assert sorted(server.recipients()) == numbered(6)  # each once
    assert api.ok("GET", f"/mailings/{mid}")["progress"]["sent"] == 6
