"""Engines and schema: one place that knows SQLite from PostgreSQL."""

from __future__ import annotations

import os
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config

from tidings.errors import StoreUnavailable

MIGRATIONS = Path(__file__).with_name("migrations")


def _make_private(database: str | None) -> None:
    """Make a SQLite file and its ``-wal``/``-shm`` readable by their owner only: the
    database holds the secret key that signs sessions and encrypts DKIM keys."""
    if not database or database == ":memory:" or database.startswith("file:"):
        return
    for path in (database, database + "-wal", database + "-shm"):
        try:
            if os.stat(path).st_mode & 0o077:
                os.chmod(path, 0o600)
        except FileNotFoundError:
            pass
        except PermissionError:  # not ours to change (another user's file)
            pass


def make_engine(url: str, *, busy_timeout: float = 30, **kwargs: object) -> sa.Engine:
    """An engine for ``url``; SQLite gets WAL, a busy timeout (seconds a writer
    waits for another's lock before ``database is locked``) and foreign keys, and
    its files are made private (0600) on every new connection."""
    if url.startswith("sqlite"):
        engine = sa.create_engine(
            url, connect_args={"timeout": busy_timeout, "check_same_thread": False}, **kwargs
        )
        database = sa.engine.make_url(url).database

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
            # Let SQLAlchemy, not pysqlite, issue BEGIN, so that writers take the
            # lock up front (BEGIN IMMEDIATE) instead of failing on upgrade.
            _make_private(database)  # before WAL makes -wal and -shm, which copy its mode
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA busy_timeout={int(busy_timeout * 1000)}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()
            _make_private(database)

        @sa.event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
            # Readers (``read_only`` connections) do not take the write lock.
            read_only = conn.get_execution_options().get("read_only", False)
            conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        return engine
    return sa.create_engine(url, pool_pre_ping=True, **kwargs)


_BUSY = ("database is locked", "database table is locked", "database schema is locked")
_FULL = ("database or disk is full", "no space left on device", "could not extend file",
         "disk quota exceeded")
_GONE = ("unable to open database file", "disk i/o error")


def unavailable(exc: BaseException) -> StoreUnavailable | None:
    """The port-level error for a driver error that says the database cannot
    serve now (unreachable, restarting, busy, disk full), or None for any other
    error (a bug or a refused value, which is not the database's condition).

    The engine and the API see only :class:`~tidings.errors.StoreUnavailable`:
    ``database_unavailable``, ``database_busy`` or ``database_full``."""
    if isinstance(exc, StoreUnavailable):
        return exc
    if not isinstance(exc, sa.exc.DBAPIError):
        return None
    said = str(exc.orig).lower() if exc.orig is not None else str(exc).lower()
    state = str(getattr(exc.orig, "sqlstate", None) or "")
    if any(words in said for words in _FULL) or state == "53100":
        return StoreUnavailable(
            "The database's disk is full: nothing more can be saved until space is freed. "
            "Free some space on the database's disk, then try again.", code="database_full",
            retry_after=30)
    if any(words in said for words in _BUSY) or state.startswith("40") or state in ("55P03", "57014"):
        return StoreUnavailable(
            "The database is busy with other changes: try again in a moment.", code="database_busy",
            retry_after=1)
    postgres = exc.orig is not None and type(exc.orig).__module__.startswith("psycopg")
    lost = isinstance(exc, sa.exc.OperationalError | sa.exc.InterfaceError)
    if exc.connection_invalidated or (postgres and lost) or any(words in said for words in _GONE):
        return StoreUnavailable(
            "The database cannot be reached right now (it may be restarting): try again in a moment.",
            retry_after=5)
    return None


def alembic_config(url: str) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def migrate(url: str) -> None:
    """Create or upgrade the schema to the newest revision."""
    command.upgrade(alembic_config(url), "head")
