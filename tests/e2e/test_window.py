"""Real worker processes against a loopback SMTP server: a SIGKILLed worker leaves
at most connections x 2 x TIDINGS_SEND_CHUNK messages unknown (per connection the
chunk on the wire and the next, marked while it goes), and a SIGTERMed one hands
its package back with nothing unknown and exits at once."""

from __future__ import annotations

import collections
import signal
import subprocess
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.builders import draft_mailing, numbered
from tests.e2e.test_cli import Served
from tests.e2e.test_crash import TIDINGS, worker_env
from tidings.services.sending import make_worker
from tidings.store.tables import messages, packages

pytestmark = pytest.mark.slow

CONNECTIONS, CHUNK, GROUP = 4, 5, 50
BOUND = CONNECTIONS * 2 * CHUNK  # 40: less than a group (50) or a package (100)


def env(db_url: str, smtp_url: str, tmp_path: Path, *, lease: int) -> dict[str, str]:
    return worker_env(db_url, smtp_url, tmp_path) | {
        "TIDINGS_SMTP_CONNECTIONS": str(CONNECTIONS), "TIDINGS_SEND_CHUNK": str(CHUNK),
        "TIDINGS_SEND_GROUP": str(GROUP), "TIDINGS_PACKAGE_SIZE": "100",
        "TIDINGS_WORKER_LEASE": str(lease), "TIDINGS_LOG_LEVEL": "WARNING"}


def statuses(ctx, mid: int) -> dict[str, str]:  # type: ignore[no-untyped-def]
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(messages.c.address, messages.c.status)
                            .where(messages.c.mailing_id == mid)).all()
    return {address: status for address, status in rows}


def holding(ctx, mid: int, pid: int, timeout: float = 60) -> None:  # type: ignore[no-untyped-def]
    """Wait until the worker process ``pid`` holds a package of the mailing."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        with ctx.engine.connect() as conn:
            owners = conn.execute(sa.select(packages.c.lease_owner).where(
                packages.c.mailing_id == mid, packages.c.status == "active")).scalars().all()
        if any(f":{pid}:" in (owner or "") for owner in owners):
            return
        time.sleep(0.01)
    with ctx.engine.connect() as conn:
        rows = conn.execute(sa.select(packages.c.status, packages.c.lease_owner)).all()
    raise AssertionError(f"worker {pid} never held a package of mailing {mid}: {rows}")


def wait_until_sent(api, mid: int, timeout: float = 120) -> dict:  # type: ignore[no-untyped-def, type-arg]
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        mailing = api.ok("GET", f"/mailings/{mid}")
        if mailing["status"] != "sending":
            return mailing  # type: ignore[no-any-return]
        time.sleep(0.2)
    raise AssertionError(f"mailing {mid} still sending after {timeout} s")


def test_a_sigkilled_worker_of_three_leaves_at_most_its_chunks_on_the_wire_unknown(
        db_url, make_ctx, api_for, smtp_server, tmp_path):
    total = 600
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=100)  # six packages for three workers
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(total))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.delay = 0.004
    workers = [subprocess.Popen([TIDINGS, "worker"], env=env(db_url, smtp_server.url, tmp_path, lease=2),
                                cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
               for _ in range(3)]
    try:
        smtp_server.wait_for(200, timeout=90)
        holding(ctx, mid, workers[0].pid)  # it dies with a package in its hands
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait(timeout=10)
        assert len(smtp_server.messages) < total  # it died in the middle of the mailing
        final = wait_until_sent(api, mid)
    finally:
        for w in workers:
            if w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in workers:
            w.wait(timeout=30)

    delivered = collections.Counter(smtp_server.recipients())
    assert [r for r, n in delivered.items() if n > 1] == []  # nobody got it twice
    status = statuses(ctx, mid)
    unknown = [a for a, s in status.items() if s == "unknown"]
    assert len(unknown) <= BOUND  # what was on the wire, not a whole group or more
    assert {a for a, s in status.items() if s == "sent"} <= set(delivered)
    assert set(delivered) <= {a for a, s in status.items() if s in ("sent", "unknown")}
    p = final["progress"]
    assert final["status"] == "sent"
    assert p["sent"] + p["unknown"] == p["total"] == total  # every message accounted for
    assert p["unknown"] == len(unknown)
    assert ("send_unknown" in final["actions"]) == bool(unknown)


def test_a_sigtermed_worker_finishes_what_is_on_the_wire_hands_its_package_back_and_exits(
        db_url, make_ctx, api_for, smtp_server, tmp_path):
    total, lease = 300, 60
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=300, worker_lease=lease)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(total))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.delay = 0.004
    worker = subprocess.Popen([TIDINGS, "worker"],
                              env=env(db_url, smtp_server.url, tmp_path, lease=lease) |
                              {"TIDINGS_PACKAGE_SIZE": "300"},
                              cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        smtp_server.wait_for(60, timeout=60)
        worker.send_signal(signal.SIGTERM)
        code = worker.wait(timeout=lease / 2)  # well within its lease
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    assert code == 0, worker.stderr.read() if worker.stderr else ""
    went = len(smtp_server.messages)
    assert went < total  # it stopped in the middle
    status = statuses(ctx, mid)
    assert collections.Counter(status.values()) == {"sent": went, "queued": total - went}
    with ctx.engine.connect() as conn:
        package = conn.execute(sa.select(packages.c.status, packages.c.lease_owner)
                               .where(packages.c.mailing_id == mid)).one()
    assert (package.status, package.lease_owner) == ("pending", None)  # handed back

    smtp_server.handler.delay = 0
    make_worker(ctx).run_until_idle()  # another worker takes it over at once, lease or not

    delivered = collections.Counter(smtp_server.recipients())
    assert sorted(delivered) == [f"c{i:03d}@example.org" for i in range(total)]
    assert set(delivered.values()) == {1}
    final = api.ok("GET", f"/mailings/{mid}")
    assert final["status"] == "sent"
    assert final["progress"]["sent"] == total and final["progress"]["unknown"] == 0


def test_tidings_serve_on_sigterm_hands_its_workers_package_back_and_exits(
        db_url, make_ctx, api_for, smtp_server, tmp_path):
    total, lease = 300, 60
    ctx = make_ctx(smtp_url=smtp_server.url, package_size=300, worker_lease=lease)
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(total))["mailing"]["id"]
    api.ok("POST", f"/mailings/{mid}/send")
    smtp_server.handler.delay = 0.004
    served = Served(db_url, tmp_path, env=env(db_url, smtp_server.url, tmp_path, lease=lease) |
                    {"TIDINGS_PACKAGE_SIZE": "300"})
    try:
        smtp_server.wait_for(60, timeout=60)
        served.proc.send_signal(signal.SIGTERM)
        code = served.proc.wait(timeout=lease / 2)
    finally:
        if served.proc.poll() is None:
            served.proc.kill()
            served.proc.wait()
    assert code == 0
    went = len(smtp_server.messages)
    assert went < total
    assert collections.Counter(statuses(ctx, mid).values()) == {"sent": went, "queued": total - went}
    smtp_server.handler.delay = 0
    make_worker(ctx).run_until_idle()
    delivered = collections.Counter(smtp_server.recipients())
    assert len(delivered) == total and set(delivered.values()) == {1}
    assert api.ok("GET", f"/mailings/{mid}")["status"] == "sent"
