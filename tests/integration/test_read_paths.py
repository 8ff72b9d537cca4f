"""What keeps the API and the UI answering while a big mailing sends (``bench/load.py``
measures it): the mailing page reads in one transaction, a read inside a read
joins it, a PostgreSQL read needs no BEGIN and COMMIT, and ``tidings serve``'s
sending worker shortens the GIL switch interval for the life of the app, on
both databases."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from fastapi.testclient import TestClient

from tests.builders import draft_mailing, numbered, send
from tidings.api.app import create_app
from tidings.services import users
from tidings.services.context import Context
from tidings.services.sending import WORKER_SWITCH_INTERVAL
from tidings.store import meta

PASSWORD = "long enough password"


@contextmanager
def checkouts(ctx: Context) -> Iterator[list[int]]:
    """How many pooled connections are taken inside the block (one a transaction)."""
    taken: list[int] = []

    def count(*_: object) -> None:
        taken.append(1)

    sa.event.listen(ctx.engine, "checkout", count)
    try:
        yield taken
    finally:
        sa.event.remove(ctx.engine, "checkout", count)


def test_a_read_inside_a_read_is_that_read_and_ends_with_it(make_ctx) -> None:
    ctx = make_ctx()
    with checkouts(ctx) as taken:
        with ctx.read() as outer:
            with ctx.read() as inner:
                assert inner is outer
                assert inner.execute(sa.text("SELECT 1")).scalar_one() == 1
            assert outer.in_transaction()  # the inner read did not end it
        with ctx.read() as later:
            assert later is not outer
    assert len(taken) == 2
    with ctx.read() as conn:  # a read that failed leaves no read open behind it
        try:
            with ctx.read():
                raise KeyError("boom")
        except KeyError:
            pass
        assert conn.in_transaction()
    with ctx.read() as fresh:
        assert fresh is not conn


def test_a_read_on_postgresql_runs_in_autocommit_and_gives_its_connection_back_transactional(
        make_ctx) -> None:
    ctx = make_ctx()
    with ctx.read() as conn:
        dbapi = conn.connection.dbapi_connection
        assert conn.execute(sa.text("SELECT 1")).scalar_one() == 1
        if ctx.engine.dialect.name == "postgresql":
            assert dbapi is not None and dbapi.autocommit is True  # no BEGIN, no COMMIT
    # The same pooled connection, taken for a write that fails: nothing of it stays.
    try:
        with ctx.tx() as conn:
            assert conn.connection.dbapi_connection is dbapi
            meta.put_meta_once(conn, "read-path-probe", "written")
            raise KeyError("boom")
    except KeyError:
        pass
    with ctx.read() as conn:
        assert meta.get_meta(conn, "read-path-probe") is None


def test_the_mailing_page_is_read_through_one_connection(make_ctx, api_for) -> None:
    ctx = make_ctx()
    api = api_for(ctx)
    mid = draft_mailing(api, numbered(5))["mailing"]["id"]
    send(api, ctx, mid)  # sent: the page shows its statistics too
    users.create_user(ctx, email="ann@shop.example", password=PASSWORD, role="manager")
    with TestClient(create_app(ctx), follow_redirects=False) as client:
        form = client.get("/sign-in").text
        csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
        assert csrf
        signed = client.post("/sign-in", data={"email": "ann@shop.example", "password": PASSWORD,
                                               "csrf_token": csrf.group(1)})
        assert signed.status_code == 303
        with checkouts(ctx) as taken:
            page = client.get(f"/mailings/{mid}")
        assert page.status_code == 200
        assert "Autumn" in page.text and "Sent" in page.text
        # the session, then the whole page (mailing, segment, statistics, templates, segments)
        assert len(taken) == 2, len(taken)


def test_serve_s_sending_worker_shortens_the_switch_interval_while_it_runs(make_ctx) -> None:
    ctx = make_ctx()
    before = sys.getswitchinterval()
    assert before != WORKER_SWITCH_INTERVAL
    with TestClient(create_app(ctx)):  # no worker: the interval is Python's
        assert sys.getswitchinterval() == before
    with TestClient(create_app(ctx, run_worker=True)):
        assert sys.getswitchinterval() == WORKER_SWITCH_INTERVAL
    assert sys.getswitchinterval() == before
