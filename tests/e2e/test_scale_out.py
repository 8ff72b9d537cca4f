"""Several worker processes share one mailing through PostgreSQL; one is killed."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.builders import draft_mailing, numbered
from tests.e2e.test_crash import worker_env
from tidings.services.sending import make_worker

pytestmark = pytest.mark.slow

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def test_three_workers_share_a_mailing_and_a_killed_one_causes_no_repeats(
    db_url, make_ctx, api_for, smtp_server, tmp_path
):
    if not db_url.startswith("postgresql"):
        pytest.skip("scale-out across processes is a PostgreSQL feature")
    ctx = make_ctx(smtp_url=smtp_server.url, worker_lease=1, send_group=10, package_size=50)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(600))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.delay = 0.002
    env = worker_env(db_url, smtp_server.url, tmp_path) | {"TIDINGS_PACKAGE_SIZE": "50"}
    procs = [subprocess.Popen([TIDINGS, "worker"], env=env, cwd=tmp_path,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
    try:
        smtp_server.wait_for(150, timeout=60)
        os.kill(procs[0].pid, signal.SIGKILL)
        deadline = time.monotonic() + 120
        while api.ok("GET", f"/mailings/{mid}")["status"] == "sending":
            assert time.monotonic() < deadline, "the survivors did not finish the mailing"
            time.sleep(0.2)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in procs:
            p.wait(timeout=30)

    delivered = collections.Counter(smtp_server.recipients())
    assert [r for r, n in delivered.items() if n > 1] == []
    final = api.ok("GET", f"/mailings/{mid}")
    assert final["status"] == "sent"
    p = final["progress"]
    assert p["sent"] + p["unknown"] == p["total"] == 600
    assert p["unknown"] <= 10  # the killed worker's one group in flight
    assert len(delivered) >= 600 - p["unknown"]
    assert procs[1].returncode == 0 and procs[2].returncode == 0  # the survivors stopped cleanly


def test_a_small_mailing_is_not_starved_by_a_big_one(make_ctx, api_for, smtp_server):
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=5)
    api = api_for(ctx)
    big = draft_mailing(api, numbered(20))
    small = api.ok("POST", "/mailings", {"name": "small", "segment_id": big["segment"]["id"],
                                         "template_id": big["template"]["id"]}, status=201)
    api.ok("POST", f"/mailings/{big['mailing']['id']}/send")
    api.ok("POST", f"/mailings/{small['id']}/send")
    worker = make_worker(ctx)
    claimed = []
    for _ in range(3):
        package = worker.claim()
        assert package is not None
        claimed.append((package.mailing_id, package.seq))
    assert claimed == [(big["mailing"]["id"], 1), (small["id"], 1), (big["mailing"]["id"], 2)]


def test_the_send_rate_is_shared_by_all_workers(make_ctx):
    a, b = make_ctx(), make_ctx()
    waits = [a.store.take_send_slot(10, 10.0), b.store.take_send_slot(10, 10.0),
             a.store.take_send_slot(10, 10.0)]
    # 10 messages at 10/s take a second: each worker waits for the slots taken before it
    assert waits[0] == pytest.approx(0, abs=0.2)
    assert waits[1] == pytest.approx(1, abs=0.2)
    assert waits[2] == pytest.approx(2, abs=0.2)
