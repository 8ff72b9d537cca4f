"""Which driver errors mean "the database cannot serve now" (503, the worker
waits) and which are ours to report (500): :func:`tidings.store.db.unavailable`."""

from __future__ import annotations

import sqlite3

import psycopg
import pytest
import sqlalchemy as sa

from tidings.store.db import unavailable


def wrapped(kind: type[sa.exc.DBAPIError], orig: Exception, *,
            invalidated: bool = False) -> sa.exc.DBAPIError:
    return kind("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(("error", "code"), [
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database is locked")), "database_busy"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("database or disk is full")), "database_full"),
    (wrapped(sa.exc.OperationalError, sqlite3.OperationalError("unable to open database file")),
     "database_unavailable"),
    (wrapped(sa.exc.OperationalError, psycopg.OperationalError(
        "connection failed: connection to server at \"127.0.0.1\", port 5432 failed: Connection refused")),
     "database_unavailable"),
    (wrapped(sa.exc.OperationalError, psycopg.errors.AdminShutdown(
        "terminating connection due to administrator command"), invalidated=True), "database_unavailable"),
    (wrapped(sa.exc.OperationalError, psycopg.errors.DeadlockDetected("deadlock detected")), "database_busy"),
    (wrapped(sa.exc.OperationalError, psycopg.errors.DiskFull("could not extend file")), "database_full"),
], ids=lambda value: getattr(value, "code", None) or str(getattr(value, "orig", value))[:30])
def test_a_database_that_cannot_serve_now_is_a_503_with_its_reason(error, code):
    down = unavailable(error)
    assert down is not None
    assert (down.status, down.code) == (503, code)
    assert down.retry_after >= 1


@pytest.mark.parametrize("error", [
    wrapped(sa.exc.IntegrityError, sqlite3.IntegrityError("UNIQUE constraint failed: customers.email")),
    wrapped(sa.exc.OperationalError, sqlite3.OperationalError("no such table: customers")),
    wrapped(sa.exc.ProgrammingError, psycopg.errors.UndefinedTable("relation \"x\" does not exist")),
    ValueError("not a database error"),
], ids=["integrity", "missing-table", "programming", "other"])
def test_a_bug_or_a_refused_value_is_not_an_outage(error):
    assert unavailable(error) is None
