"""A worker process killed with SIGKILL mid-mailing leaves no repeats after restart."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tidings.services.sending import make_worker
from tidings.store.tables import messages

pytestmark = pytest.mark.slow

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def worker_env(db_url: str, smtp_url: str, tmp_path: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TIDINGS_DATABASE_URL": db_url,
        "TIDINGS_SMTP_URL": smtp_url,
        "TIDINGS_SECRET_KEY": "test-secret-key-at-least-32-characters",
        "TIDINGS_PUBLIC_URL": "http://tidings.test",
        "TIDINGS_REQUIRE_VERIFIED_DOMAIN": "false",
        "TIDINGS_WORKER_LEASE": "1",
        "TIDINGS_POLL_INTERVAL": "0.05",
        "TIDINGS_SEND_GROUP": "10",
        "TIDINGS_SMTP_CONNECTIONS": "2",
        "TIDINGS_PACKAGE_SIZE": "100",
    }


def test_sigkill_in_the_middle_of_sending_leaves_no_repeats(db_url, make_ctx, api_for, smtp_server, tmp_path):
    ctx = make_ctx(smtp_url=smtp_server.url, worker_lease=1, send_group=10, package_size=100)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(300))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.delay = 0.003

    proc = subprocess.Popen([TIDINGS, "worker"], env=worker_env(db_url, smtp_server.url, tmp_path),
                            cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        smtp_server.wait_for(60, timeout=60)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    assert len(smtp_server.messages) < 300  # it died in the middle
    smtp_server.handler.delay = 0
    time.sleep(1.2)  # the dead worker's lease runs out
    make_worker(ctx).run_until_idle()

    delivered = collections.Counter(smtp_server.recipients())
    assert [r for r, n in delivered.items() if n > 1] == []
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(messages.c.address, messages.c.status)
                            .where(messages.c.mailing_id == mid)).all()
    status = {address: state for address, state in rows}
    unknown = [a for a, s in status.items() if s == "unknown"]
    assert len(unknown) <= 10  # at most the group that was in flight
    assert {a for a, s in status.items() if s == "sent"} <= set(delivered)
    assert set(delivered) <= {a for a, s in status.items() if s in ("sent", "unknown")}
    assert len(delivered) >= 300 - len(unknown)
    final = api.ok("GET", f"/mailings/{mid}")
    assert final["status"] == "sent"
    p = final["progress"]
    assert p["sent"] + p["unknown"] == p["total"] == 300
