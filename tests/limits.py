"""Run hostile work in a child process that cannot take the machine with it.

A test that tries a template or a request built to exhaust memory or CPU runs
it in a child with an address-space limit (``RLIMIT_AS``) and a CPU-time limit
(``RLIMIT_CPU``), under a wall-clock timeout: if a regression lets the
template loose, the child dies of a ``MemoryError`` or ``SIGXCPU`` and the test
fails, instead of the kernel's OOM killer taking other work on the machine.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
from collections.abc import Callable
from typing import Any

#: Address space of a limited child: Python, Jinja and SQLAlchemy fit well within it.
MEMORY = 1536 * 1024 * 1024
CPU_SECONDS = 60


def limits(*, memory: int = MEMORY, cpu_seconds: int = CPU_SECONDS) -> Callable[[], None]:
    """A ``preexec_fn`` that caps the child's address space and CPU time."""

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        resource.setrlimit(resource.RLIMIT_CPU, (cpu_seconds, cpu_seconds))

    return apply


def limited_env(**extra: str) -> dict[str, str]:
    """The environment of a limited child: few malloc arenas, since each thread's
    arena reserves 64 MB of address space that it never uses."""
    return {**os.environ, "MALLOC_ARENA_MAX": "2", **extra}


def run_python(code: str, payload: Any, *, timeout: float = 120, memory: int = MEMORY) -> Any:
    """Run ``code`` in a limited Python child with ``payload`` as JSON on stdin;
    returns what the child printed as JSON on its last line."""
    done = subprocess.run(
        [sys.executable, "-c", code], input=json.dumps(payload), capture_output=True, text=True,
        timeout=timeout, env=limited_env(), preexec_fn=limits(memory=memory), check=False)
    assert done.returncode == 0, f"the limited child failed ({done.returncode}): {done.stderr[-3000:]}"
    return json.loads(done.stdout.strip().splitlines()[-1])
