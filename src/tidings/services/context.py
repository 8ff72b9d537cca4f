"""The service layer's context: settings, the database engine, the clock, the secret."""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import cached_property

import sqlalchemy as sa

from tidings.config import Settings
from tidings.engine.lifecycle import SendingPolicy
from tidings.store import meta
from tidings.store.db import make_engine, migrate
from tidings.store.sending import SqlStore


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class Context:
    settings: Settings
    engine: sa.Engine
    clock: Callable[[], datetime] = field(default=utcnow)
    # The read open on each thread, which a read started inside it joins.
    _reading: threading.local = field(default_factory=threading.local, init=False, repr=False,
                                      compare=False)

    @classmethod
    def create(cls, settings: Settings, *, migrate_schema: bool = True) -> Context:
        if migrate_schema:
            migrate(settings.database_url)
        ctx = cls(settings=settings, engine=make_engine(settings.database_url,
                                                        busy_timeout=settings.sqlite_busy_timeout))
        ctx.secret  # noqa: B018 - resolve it now, never inside another transaction
        return ctx

    @contextmanager
    def tx(self) -> Iterator[sa.Connection]:
        """One transaction: committed when the block ends, rolled back on error."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[sa.Connection]:
        """A read-only transaction: on SQLite one consistent snapshot that does
        not hold the write lock (so a slow report never stalls the workers).

        A read started inside another on the same thread is that read: a page
        that calls several services inside one ``ctx.read()`` takes one pooled
        connection and one transaction, not one each (on PostgreSQL every
        checkout is a ping, a BEGIN and a COMMIT: round trips that, in ``tidings
        serve``, each wait for the GIL the sending worker holds).

        On PostgreSQL the read runs without BEGIN and COMMIT (autocommit): at its
        default isolation, READ COMMITTED, each statement of a transaction sees
        the database as it stands when that statement starts, so a transaction
        around reads gives them nothing but two more round trips."""
        outer = getattr(self._reading, "conn", None)
        if outer is not None:
            yield outer
            return
        with self.engine.connect() as conn:
            conn = conn.execution_options(read_only=True, **self._read_options)
            with conn.begin():
                self._reading.conn = conn
                try:
                    yield conn
                finally:
                    self._reading.conn = None

    @cached_property
    def _read_options(self) -> dict[str, str]:
        return {"isolation_level": "AUTOCOMMIT"} if self.engine.dialect.name == "postgresql" else {}

    def now(self) -> datetime:
        return self.clock()

    @cached_property
    def secret(self) -> bytes:
        """``TIDINGS_SECRET_KEY``, or a key generated once and kept in the database.

        Read it outside any open transaction: on SQLite a second writer would wait
        for the first."""
        if self.settings.secret_key:
            return self.settings.secret_key.encode()
        with self.tx() as conn:
            return meta.put_meta_once(conn, "secret_key", secrets.token_hex(32)).encode()

    @property
    def known_secret(self) -> bytes | None:
        """:attr:`secret` if it was read already, else None; reads no database, so
        the event loop may ask it."""
        known: bytes | None = self.__dict__.get("secret")
        return known

    @cached_property
    def store(self) -> SqlStore:
        """The engine's storage port on this context's database."""
        return SqlStore(self.engine)

    @property
    def policy(self) -> SendingPolicy:
        """What a start checks beyond the state machine, from the settings."""
        return SendingPolicy.from_settings(self.settings)

    def close(self) -> None:
        self.engine.dispose()
