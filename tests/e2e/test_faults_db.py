"""The database goes away, is locked or fills up while a mailing sends: real
processes (``tidings serve``, ``tidings worker``), a real PostgreSQL stopped
and started again, SQLite under concurrent writers, and disks that are full.

Whatever happens, every recipient gets the mailing at most once (counted at
the SMTP server or in the outbox) and the progress accounts for every message.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.builders import draft_mailing, numbered
from tests.pgserver import ThrowawayPostgres, ThrowawayPostgresError
from tests.processes import (
    HttpApi,
    assert_each_at_most_once_and_accounted,
    serve,
    statuses,
    tidings_env,
    wait_for_status,
    worker,
)
from tests.smtpserver import SmtpServer

pytestmark = pytest.mark.slow


@pytest.fixture
def own_postgres() -> Iterator[ThrowawayPostgres]:
    """A PostgreSQL of this test's own, to be stopped and started (never the shared one)."""
    server = ThrowawayPostgres()
    try:
        server.start()
    except ThrowawayPostgresError as exc:
        pytest.fail(f"a throw-away PostgreSQL could not be started: {exc}", pytrace=False)
    yield server
    server.stop()


# -- PostgreSQL stopped and started while sending ----------------------------------------


def test_postgresql_stopped_mid_mailing_the_worker_waits_then_finishes_without_repeats(
        own_postgres: ThrowawayPostgres, smtp_server: SmtpServer, tmp_path: Path) -> None:
    url = own_postgres.url
    env = tidings_env(url, smtp_server.url, worker_lease=10)
    web = serve(env, tmp_path, "--no-worker", name="serve")
    api = HttpApi(web)
    sender = None
    try:
        mid = draft_mailing(api, numbered(300))["mailing"]["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        smtp_server.handler.delay = 0.02
        sender = worker(env, tmp_path)
        smtp_server.wait_for(60, timeout=60)

        own_postgres.halt()
        at_halt = len(smtp_server.messages)
        down = api.request("GET", f"/mailings/{mid}")
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "database_unavailable"
        assert "try again in a moment" in down.json()["error"]["message"]
        assert int(down.headers["Retry-After"]) >= 1
        time.sleep(4)
        during = len(smtp_server.messages) - at_halt
        own_postgres.resume()

        final = wait_for_status(api, mid, {"sent"}, timeout=90)
    finally:
        if sender is not None:
            sender.stop()
        web.stop()
        api.close()

    # While the database was away at most the group already handed over went out.
    assert during <= 10
    said = sender.log()
    assert "Traceback" not in said, said
    lines = said.splitlines()
    assert len([line for line in lines if "sending waits for it" in line]) == 1, said
    assert len([line for line in lines if "the database answers again" in line]) == 1, said
    status = statuses(url, mid)
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), status, final["progress"], 300)
    # The worker waited inside the transaction that could not begin, so it
    # recorded the replies of the group it had sent: at most one group unknown.
    assert final["progress"]["unknown"] <= 10
    assert final["progress"]["failed"] == 0


# -- SQLite: concurrent API writers while a mailing sends ---------------------------------


def test_sqlite_concurrent_api_writes_while_sending_are_done_or_refused_never_a_500(
        sqlite_template: Path, smtp_server: SmtpServer, tmp_path: Path) -> None:
    import shutil
    from concurrent.futures import ThreadPoolExecutor

    db = tmp_path / "tidings.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    web = serve(tidings_env(url, smtp_server.url, worker_lease=10), tmp_path)
    api = HttpApi(web)
    try:
        mid = draft_mailing(api, numbered(400))["mailing"]["id"]
        smtp_server.handler.delay = 0.002
        api.ok("POST", f"/mailings/{mid}/send")

        def writes(writer: int) -> list[tuple[str, str, int, dict]]:  # type: ignore[type-arg]
            own = HttpApi(web)
            done = []
            try:
                for n in range(15):
                    email = f"w{writer}-{n}@example.net"
                    for kind, path, body in (
                            ("customer", "/customers", {"email": email, "first_name": f"W{n}"}),
                            ("template", "/templates", {"name": f"t{writer}-{n}", "channel": "email",
                                                        "subject": "Hi", "html": "<p>Hi</p>"}),
                            ("segment", "/segments", {"name": f"s{writer}-{n}",
                                                      "rules": {"field": "email", "op": "eq",
                                                                "value": email}})):
                        response = own.request("POST", path, body)
                        done.append((kind, email, response.status_code, response.json()))
            finally:
                own.close()
            return done

        with ThreadPoolExecutor(max_workers=6) as pool:
            results = [r for batch in pool.map(writes, range(6)) for r in batch]
        final = wait_for_status(api, mid, {"sent"}, timeout=120)

        refused = [r for r in results if r[2] != 201]
        assert all(status == 503 and body["error"]["code"] == "database_busy"
                   for _, _, status, body in refused), refused
        for kind, email, status, _ in results:
            if kind == "customer":  # done whole, or not at all
                found = api.ok("GET", f"/customers?email={email}")
                found = found["customers"] if isinstance(found, dict) else found
                assert len(found) == (1 if status == 201 else 0), (email, status)
        print(f"\n{len(results)} concurrent writes while sending on SQLite: "
              f"{len(results) - len(refused)} done, {len(refused)} refused with 503")
    finally:
        web.stop()
        api.close()
    assert "Traceback" not in web.log(), web.log()
    assert "internal error" not in web.log()
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), statuses(url, mid),
                                           final["progress"], 400)
    assert final["progress"]["sent"] == 400
