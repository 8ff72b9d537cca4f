"""Fixtures shared by every test.

``db_url`` is parametrized by database: each test that uses it runs on SQLite
(a fresh file copied from a migrated template) and on PostgreSQL (one fresh
database per test run, its tables emptied before each test). Set
``TIDINGS_TEST_DATABASES=sqlite`` to skip PostgreSQL while iterating.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

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


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    name = f"tidings_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    migrate(url)
    yield url
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


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
