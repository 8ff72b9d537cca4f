"""The README's API tour, run as written against ``tidings serve --demo``.

The tour is the ``sh`` block under "## API tour". It is run in one bash
session in the folder where the server runs (as ``make run`` leaves it), with
only the port changed to a free one. Each ``# ->`` line under a command is
what that command prints, ``...`` standing for anything.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.serving import free_port, wait_until_healthy

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
TIDINGS = str(Path(sys.executable).with_name("tidings"))
SERVE = ["serve", "--demo"]
MARK = "@@tour-step@@"


@dataclass
class Step:
    command: str
    expected: list[str] = field(default_factory=list)


def tour_steps(readme: str) -> list[Step]:
    """The commands of the tour, each with the ``# ->`` lines that follow it.

    A command starts at a line that is not indented; indented lines continue
    it, and so do the lines of a here-document it opened."""
    section = readme[readme.index("## API tour"):]
    block = section[section.index("```sh\n") + len("```sh\n"):]
    block = block[:block.index("```")]
    steps: list[Step] = []
    heredoc: str | None = None
    for line in block.splitlines():
        expected = re.match(r"#\s*-> ?(.*)$", line.strip())
        if heredoc is not None:
            steps[-1].command += "\n" + line
            heredoc = None if line.strip() == heredoc else heredoc
        elif expected:
            steps[-1].expected.append(expected.group(1))
        elif not line.strip() or line.lstrip().startswith("#"):
            continue
        elif line[0].isspace():
            steps[-1].command += "\n" + line
        else:
            steps.append(Step(line))
        opened = re.search(r"<<'?(\w+)'?", line) if heredoc is None else None
        if opened:
            heredoc = opened.group(1)
    return steps


def matches(expected: str, actual: str) -> bool:
    pattern = ".*?".join(re.escape(part) for part in expected.split("..."))
    return re.fullmatch(pattern, actual, flags=re.DOTALL) is not None


@pytest.fixture
def served(tmp_path: Path):  # type: ignore[no-untyped-def]
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_LOG_LEVEL"] = "WARNING"
    proc = subprocess.Popen([TIDINGS, *SERVE, "--port", str(port)], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", proc,
                           output=lambda: proc.stdout.read() if proc.stdout else "")
        yield port
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_tour_finds_its_commands_and_their_outputs() -> None:
    steps = tour_steps((ROOT / "README.md").read_text())
    assert len(steps) >= 10
    assert sum(1 for s in steps if s.expected) >= 8
    assert any("cat > customers.csv" in s.command and "CSV" in s.command.splitlines()[-1]
               for s in steps)


@pytest.mark.skipif(shutil.which("curl") is None or shutil.which("jq") is None,
                    reason="the tour needs curl and jq (apt-get install curl jq)")
def test_the_readme_tour_runs_as_written(served: int, tmp_path: Path) -> None:
    steps = tour_steps((ROOT / "README.md").read_text())
    script = "set -u\n"
    for i, step in enumerate(steps):
        command = step.command.replace("127.0.0.1:8000", f"127.0.0.1:{served}")
        script += f"printf '\\n{MARK}{i}\\n'\n{command}\n"
    out = subprocess.run(["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True,
                         timeout=120, env={**os.environ, "TZ": "UTC"})
    assert out.stderr == "", out.stderr
    printed = re.split(rf"^{MARK}(\d+)\n", out.stdout, flags=re.MULTILINE)[1:]
    outputs = {int(i): text.strip() for i, text in zip(printed[::2], printed[1::2], strict=True)}
    for i, step in enumerate(steps):
        actual = outputs.get(i, "")
        if step.expected:
            wanted = "\n".join(step.expected)
            assert matches(wanted, actual), f"{step.command}\nprinted:\n{actual}\nREADME says:\n{wanted}"
        else:
            assert actual == "", f"{step.command}\nprinted:\n{actual}"
