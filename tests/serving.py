"""Starting real servers in tests: a free loopback port, and waiting until a
``tidings serve`` process answers ``/healthz`` (or has died, with its output)."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_until_healthy(url: str, proc: subprocess.Popen[str] | subprocess.Popen[bytes], *,
                       timeout: float = 60, output: Callable[[], object] | None = None) -> None:
    """Wait until ``{url}/healthz`` answers 200; fail with the process's output
    (``output()``, else its stderr) if it stops first or never answers."""
    deadline = time.monotonic() + timeout
    while True:
        if proc.poll() is not None:
            raise AssertionError(f"serve stopped: {output() if output else proc.communicate()[1]!r}")
        try:
            if httpx.get(f"{url}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "serve never answered /healthz"
        time.sleep(0.1)
