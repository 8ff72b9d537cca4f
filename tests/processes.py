"""Real ``tidings serve`` and ``tidings worker`` processes for fault tests.

Each process writes its output to a log file of its own (read with
:meth:`Proc.log`), so a test can check what it said while the database was
away, and no pipe fills up while it runs.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa

from tests.serving import free_port, wait_until_healthy
from tidings.store.tables import messages

TIDINGS = str(Path(sys.executable).with_name("tidings"))
ADMIN_TOKEN = "faults-admin-token-of-at-least-32-characters"


def tidings_env(db_url: str, smtp_url: str, **settings: object) -> dict[str, str]:
    """The environment of a process on ``db_url`` sending to ``smtp_url``: small
    groups and packages, a short lease and quick polls; ``settings`` add
    ``TIDINGS_<NAME>`` variables (``worker_lease=5``)."""
    env = {
        **os.environ,
        "TIDINGS_DATABASE_URL": db_url,
        "TIDINGS_SMTP_URL": smtp_url,
        "TIDINGS_SECRET_KEY": "test-secret-key-at-least-32-characters",
        "TIDINGS_PUBLIC_URL": "http://tidings.test",
        "TIDINGS_REQUIRE_VERIFIED_DOMAIN": "false",
        "TIDINGS_ADMIN_TOKEN": ADMIN_TOKEN,
        "TIDINGS_WORKER_LEASE": "1",
        "TIDINGS_POLL_INTERVAL": "0.05",
        "TIDINGS_SEND_GROUP": "10",
        "TIDINGS_SMTP_CONNECTIONS": "2",
        "TIDINGS_PACKAGE_SIZE": "100",
    }
    env.update({f"TIDINGS_{name.upper()}": str(value) for name, value in settings.items()})
    return env


@dataclass
class Proc:
    """One ``tidings`` process; ``url`` is set for ``serve``."""

    args: list[str]
    env: dict[str, str]
    cwd: Path
    name: str
    url: str | None = None
    popen: subprocess.Popen[bytes] | None = field(default=None, repr=False)

    @property
    def log_path(self) -> Path:
        return self.cwd / f"{self.name}.log"

    def start(self) -> Proc:
        with open(self.log_path, "ab") as out:
            self.popen = subprocess.Popen([TIDINGS, *self.args], env=self.env, cwd=self.cwd,
                                          stdout=out, stderr=subprocess.STDOUT)
        if self.url is not None:
            self._wait_until_answering()
        return self

    def _wait_until_answering(self, timeout: float = 60) -> None:
        assert self.popen is not None and self.url is not None
        wait_until_healthy(self.url, self.popen, timeout=timeout, output=self.log)

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def serve(env: dict[str, str], cwd: Path, *options: str, name: str = "serve") -> Proc:
    """``tidings serve [options]`` (API, UI and, unless ``--no-worker``, a worker)
    on a free port, answering."""
    port = free_port()
    return Proc(args=["serve", "--port", str(port), *options], env=env, cwd=cwd, name=name,
                url=f"http://127.0.0.1:{port}").start()


def worker(env: dict[str, str], cwd: Path, *, name: str = "worker") -> Proc:
    """``tidings worker`` (one sending process)."""
    return Proc(args=["worker"], env=env, cwd=cwd, name=name).start()


class HttpApi:
    """``proc``'s API over HTTP with the admin token; ``ok`` as the tests' ``Api``
    has it, so ``tests.builders`` work on a real server too."""

    def __init__(self, proc: Proc) -> None:
        assert proc.url is not None
        self.client = httpx.Client(base_url=f"{proc.url}/api/v1", timeout=60,
                                   headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})

    def request(self, method: str, path: str, json: object = None) -> httpx.Response:
        return self.client.request(method, path, json=json)

    def ok(self, method: str, path: str, json: object = None, status: int = 200) -> Any:
        response = self.request(method, path, json)
        assert response.status_code == status, (response.status_code, response.text)
        return response.json()

    def close(self) -> None:
        self.client.close()


# -- what the tests check at the end


def statuses(db_url: str, mailing_id: int) -> dict[str, str]:
    """Each recipient's message status, by address."""
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            rows = conn.execute(sa.select(messages.c.address, messages.c.status)
                                .where(messages.c.mailing_id == mailing_id)).all()
    finally:
        engine.dispose()
    return {address: status for address, status in rows}


def assert_each_at_most_once_and_accounted(delivered: list[str], status: dict[str, str],
                                           progress: dict[str, int], total: int) -> None:
    """No repeats; ``sent`` ones arrived; nothing arrived that is not ``sent`` or
    ``unknown``; only ``unknown`` ones may be missing; the progress adds up."""
    counted = collections.Counter(delivered)
    assert [address for address, n in counted.items() if n > 1] == []
    unknown = {a for a, s in status.items() if s == "unknown"}
    assert {a for a, s in status.items() if s == "sent"} <= set(counted)
    assert set(counted) <= {a for a, s in status.items() if s in ("sent", "unknown")}
    assert len(counted) >= total - len(unknown)
    assert progress["total"] == total
    assert progress["sent"] + progress["failed"] + progress["skipped"] + progress["unknown"] == total


def wait_for_status(api: HttpApi, mailing_id: int, wanted: set[str], timeout: float) -> dict:  # type: ignore[type-arg]
    deadline = time.monotonic() + timeout
    while True:
        response = api.request("GET", f"/mailings/{mailing_id}")
        if response.status_code == 200 and response.json()["status"] in wanted:
            return response.json()  # type: ignore[no-any-return]
        assert time.monotonic() < deadline, f"mailing never became {wanted}: {response.text}"
        time.sleep(0.2)
