"""The database goes away, is locked or fills up while a mailing sends: real
processes (``tidings serve``, ``tidings worker``), a real PostgreSQL stopped
and started again, SQLite under concurrent writers, and disks that are full.

Whatever happens, every recipient gets the mailing at most once (counted at
the SMTP server or in the outbox) and the progress accounts for every message.
"""

from __future__ import annotations

import email
import email.policy
import errno
import os
import shutil
import sqlite3
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.builders import draft_mailing, numbered
from tests.pgserver import ThrowawayPostgres, ThrowawayPostgresError
from tests.processes import (
    TIDINGS,
    HttpApi,
    assert_each_at_most_once_and_accounted,
    serve,
    statuses,
    tidings_env,
    wait_for_status,
    worker,
)
from tests.smtpserver import SmtpServer, free_port

pytestmark = pytest.mark.slow


PASSWORD = "long enough password"


def signed_in(person: httpx.Client) -> None:
    """Sign ``person`` in as ann@shop.example through the sign-in form."""
    form = person.get("/sign-in").text
    csrf = form.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
    answer = person.post("/sign-in", data={"email": "ann@shop.example", "password": PASSWORD,
                                           "csrf_token": csrf})
    assert answer.status_code == 303, answer.text


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
    made = subprocess.run([TIDINGS, "user", "create", "--email", "ann@shop.example", "--password",
                           PASSWORD, "--role", "manager"], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)
    assert made.returncode == 0, made.stderr
    web = serve(env, tmp_path, "--no-worker", name="serve")
    api = HttpApi(web)
    person = httpx.Client(base_url=str(web.url), timeout=60)
    sender = None
    try:
        signed_in(person)
        mid = draft_mailing(api, numbered(300))["mailing"]["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        smtp_server.handler.delay = 0.02
        sender = worker(env, tmp_path)
        smtp_server.wait_for(60, timeout=60)

        own_postgres.halt()
        halted = time.monotonic()
        at_halt = len(smtp_server.messages)
        down = api.request("GET", f"/mailings/{mid}")
        assert down.status_code == 503, down.text
        assert down.json()["error"]["code"] == "database_unavailable"
        assert "try again in a moment" in down.json()["error"]["message"]
        assert int(down.headers["Retry-After"]) >= 1
        documented = httpx.get(f"{web.url}/openapi.json").json()
        assert "503" in documented["paths"]["/api/v1/mailings/{mailing_id}"]["get"]["responses"]
        # The manager, signed in, gets a page in words, not JSON or a traceback.
        page = person.get(f"/mailings/{mid}")
        assert page.status_code == 503, page.text
        assert page.headers["content-type"].startswith("text/html")
        assert "try again in a moment" in page.text and "Traceback" not in page.text
        assert int(page.headers["Retry-After"]) >= 1
        time.sleep(4)
        during = len(smtp_server.messages) - at_halt
        own_postgres.resume()
        outage = time.monotonic() - halted

        final = wait_for_status(api, mid, {"sent"}, timeout=90)
        back = person.get(f"/mailings/{mid}")  # the same session, once it answers again
        assert back.status_code == 200 and "Sent" in back.text, back.text
    finally:
        if sender is not None:
            sender.stop()
        web.stop()
        api.close()
        person.close()

    # While the database was away at most the group already handed over went out.
    assert during <= 10
    said = sender.log()
    assert "Traceback" not in said, said
    lines = said.splitlines()
    assert len([line for line in lines if "sending waits for it" in line]) == 1, said
    assert len([line for line in lines if "the database answers again" in line]) == 1, said
    status = statuses(url, mid)
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), status, final["progress"], 300)
    print(f"\nPostgreSQL down {outage:.1f} s: {during} delivered meanwhile; finished with "
          f"{final['progress']['sent']} sent, {final['progress']['unknown']} unknown")
    # The worker waited inside the transaction that could not begin, so it
    # recorded the replies of the group it had sent: at most one group unknown.
    assert final["progress"]["unknown"] <= 10
    assert final["progress"]["failed"] == 0


def test_postgresql_down_longer_than_the_lease_two_workers_take_over_by_the_lease_rules(
        own_postgres: ThrowawayPostgres, smtp_server: SmtpServer, tmp_path: Path) -> None:
    url = own_postgres.url
    env = tidings_env(url, smtp_server.url, worker_lease=2, package_size=50)
    web = serve(env, tmp_path, "--no-worker", name="serve")
    api = HttpApi(web)
    senders = []
    try:
        mid = draft_mailing(api, numbered(300))["mailing"]["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        smtp_server.handler.delay = 0.02
        senders = [worker(env, tmp_path, name=f"worker-{n}") for n in range(2)]
        smtp_server.wait_for(60, timeout=60)
        own_postgres.halt()
        time.sleep(6)  # three leases: every package held is claimable when it is back
        own_postgres.resume()
        final = wait_for_status(api, mid, {"sent"}, timeout=120)
    finally:
        for sender in senders:
            sender.stop()
        web.stop()
        api.close()
    for sender in senders:
        said = sender.log()
        assert "Traceback" not in said, said
        assert len([line for line in said.splitlines() if "sending waits for it" in line]) == 1, said
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), statuses(url, mid),
                                           final["progress"], 300)
    # Each worker had at most one group in flight when the database went.
    assert final["progress"]["unknown"] <= 2 * 10
    print(f"\ntwo workers, PostgreSQL down 6 s (lease 2 s): {final['progress']['sent']} sent, "
          f"{final['progress']['unknown']} unknown")


# -- SQLite: concurrent API writers while a mailing sends ---------------------------------


def test_sqlite_concurrent_api_writes_while_sending_are_done_or_refused_never_a_500(
        sqlite_template: Path, smtp_server: SmtpServer, tmp_path: Path) -> None:

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


def test_sqlite_locked_past_its_busy_timeout_is_a_503_for_writes_and_a_wait_for_the_worker(
        sqlite_template: Path, smtp_server: SmtpServer, tmp_path: Path) -> None:
    db = tmp_path / "tidings.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    web = serve(tidings_env(url, smtp_server.url, worker_lease=10, sqlite_busy_timeout=0.5), tmp_path)
    api = HttpApi(web)
    try:
        mid = draft_mailing(api, numbered(300))["mailing"]["id"]
        smtp_server.handler.delay = 0.01
        api.ok("POST", f"/mailings/{mid}/send")
        smtp_server.wait_for(30, timeout=60)
        holder = sqlite3.connect(db, isolation_level=None)
        holder.execute("BEGIN IMMEDIATE")  # another program holds the write lock for 4 s
        held = time.monotonic()
        busy = api.request("POST", "/customers", {"email": "busy@example.net"})
        read = api.request("GET", f"/mailings/{mid}")
        time.sleep(1)  # the group in flight comes back and cannot be recorded yet
        at_lock = len(smtp_server.messages)
        time.sleep(max(0.0, 4 - (time.monotonic() - held)))
        stalled = len(smtp_server.messages) - at_lock
        holder.execute("ROLLBACK")
        holder.close()
        final = wait_for_status(api, mid, {"sent"}, timeout=90)
    finally:
        web.stop()
        api.close()
    assert busy.status_code == 503, busy.text
    assert busy.json()["error"] == {"code": "database_busy", "message":
                                    "The database is busy with other changes: try again in a moment."}
    assert busy.headers["Retry-After"] == "1"
    assert read.status_code == 200  # readers do not wait for the write lock
    assert stalled == 0
    said = web.log()
    assert "Traceback" not in said, said
    assert len([line for line in said.splitlines()
                if "(database_busy: database is locked); sending waits for it" in line]) == 1, said
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM customers WHERE email = 'busy@example.net'"
                            ).fetchone() == (0,)
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), statuses(url, mid),
                                           final["progress"], 300)
    # The worker waited inside the transaction that could not begin: nothing unknown.
    assert final["progress"]["sent"] == 300


# -- disks that fill up -------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Callable[[str, int], Path]]:
    """``tiny_disk(name, kib)`` -> a folder on a tmpfs of that size of its own
    (unmounted at the end); skips, saying why, where mounting is not permitted."""
    mounted: list[Path] = []

    def mount(name: str, kib: int) -> Path:
        where = tmp_path / name
        where.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={kib}k,mode=0700", "tmpfs", str(where)],
                              capture_output=True, text=True, check=False)
        if done.returncode != 0:
            pytest.skip(f"cannot mount a small tmpfs to fill up (needs root or CAP_SYS_ADMIN): "
                        f"{done.stderr.strip()}")
        mounted.append(where)
        return where

    yield mount
    for where in mounted:
        subprocess.run(["umount", "-l", str(where)], check=False)


def fill(disk: Path, *, leave: int = 0) -> Path:
    """A filler file taking all the free space of ``disk`` but ``leave`` bytes
    (with ``leave=0``: written until the disk refuses, whatever else grows meanwhile)."""
    filler = disk / "filler"
    free = os.statvfs(disk).f_bavail * os.statvfs(disk).f_frsize
    with open(filler, "wb", buffering=0) as out:
        if leave:
            out.write(b"\0" * max(0, free - leave))
            return filler
        for chunk in (65536, 4096, 512):
            try:
                while True:
                    out.write(b"\0" * chunk)
            except OSError as exc:
                if exc.errno != errno.ENOSPC:
                    raise
    return filler


def test_a_full_outbox_disk_interrupts_the_mailing_in_plain_words_and_resume_repeats_nothing(
        tiny_disk: Callable[[str, int], Path], tmp_path: Path) -> None:
    outbox = tiny_disk("outbox", 512)
    filler = fill(outbox, leave=20 * 4096)  # room for about 20 messages
    db = tmp_path / "tidings.db"
    env = tidings_env(f"sqlite:///{db}", f"file://{outbox}", smtp_retry_for=1)
    web = serve(env, tmp_path)
    api = HttpApi(web)
    try:
        mid = draft_mailing(api, numbered(100))["mailing"]["id"]
        api.ok("POST", f"/mailings/{mid}/send")
        stopped = wait_for_status(api, mid, {"interrupted", "sent"}, timeout=60)
        assert stopped["status"] == "interrupted"
        reason = stopped["interrupt_reason"]
        assert reason["code"] == "technical_error"
        assert reason["message"].startswith("The outbox disk is full: the folder ")
        assert "Free some space on its disk, then resume" in reason["message"]
        written = whole_messages(outbox)
        assert 0 < len(written) < 100
        sent = {a for a, s in statuses(f"sqlite:///{db}", mid).items() if s == "sent"}
        assert set(written.values()) == sent  # what is written is sent, and the other way round

        filler.unlink()  # space is freed
        api.ok("POST", f"/mailings/{mid}/resume")
        final = wait_for_status(api, mid, {"sent", "interrupted"}, timeout=60)
    finally:
        web.stop()
        api.close()
    assert final["status"] == "sent", final
    written = whole_messages(outbox)
    assert sorted(written.values()) == numbered(100)  # each once: a repeat would add a file
    assert final["progress"]["sent"] == 100
    assert "Traceback" not in web.log()


def whole_messages(outbox: Path) -> dict[str, str]:
    """``{file name: recipient}`` of the messages in the outbox, checking that no
    temporary file is left and that each message is whole (it parses without a
    defect and ends as written)."""
    names = sorted(p.name for p in outbox.iterdir() if p.name != "filler")
    assert [n for n in names if not n.endswith(".eml")] == []
    found = {}
    for name in names:
        data = (outbox / name).read_bytes()
        message = email.message_from_bytes(data, policy=email.policy.default)
        assert not message.defects and all(not part.defects for part in message.walk()), name
        assert data.rstrip().endswith(b"--") or data.rstrip().endswith(b"</html>"), name
        found[name] = str(message["X-Envelope-To"])
    assert len(set(found.values())) == len(found)  # no recipient twice
    return found


def test_a_full_sqlite_disk_pauses_sending_with_a_clear_error_and_no_corruption(
        tiny_disk: Callable[[str, int], Path], sqlite_template: Path, smtp_server: SmtpServer,
        tmp_path: Path) -> None:
    disk = tiny_disk("db", 4096)
    db = disk / "tidings.db"
    shutil.copy(sqlite_template, db)
    url = f"sqlite:///{db}"
    web = serve(tidings_env(url, smtp_server.url, worker_lease=5), tmp_path)
    api = HttpApi(web)
    try:
        mid = draft_mailing(api, numbered(300))["mailing"]["id"]
        smtp_server.handler.delay = 0.01
        api.ok("POST", f"/mailings/{mid}/send")
        smtp_server.wait_for(20, timeout=60)
        filler = fill(disk)
        full = api.request("POST", "/customers", {"email": "late@example.net"})
        time.sleep(3)
        at_full = len(smtp_server.messages)
        time.sleep(2)
        stalled = len(smtp_server.messages) - at_full
        middle = api.request("GET", f"/mailings/{mid}")
        filler.unlink()
        final = wait_for_status(api, mid, {"sent"}, timeout=90)
        after = api.request("POST", "/customers", {"email": "later@example.net"})
    finally:
        web.stop()
        api.close()
    assert full.status_code == 503, full.text
    assert full.json()["error"]["code"] == "database_full"
    assert full.json()["error"]["message"].startswith("The database's disk is full")
    assert stalled == 0  # nothing goes out that could not be recorded
    assert middle.status_code == 200 and middle.json()["status"] == "sending"
    assert after.status_code == 201
    said = web.log()
    assert "Traceback" not in said, said
    assert len([line for line in said.splitlines() if "(database_full: database or disk is full); "
                "sending waits for it" in line]) == 1, said
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        # The refused customer was not half-made.
        assert conn.execute("SELECT count(*) FROM customers WHERE email = 'late@example.net'"
                            ).fetchone() == (0,)
    assert_each_at_most_once_and_accounted(smtp_server.recipients(), statuses(url, mid),
                                           final["progress"], 300)


def test_a_worker_started_while_the_database_is_down_says_so_in_one_line(tmp_path: Path) -> None:
    closed = f"postgresql+psycopg://postgres@127.0.0.1:{free_port()}/postgres"
    done = subprocess.run([TIDINGS, "worker"], env=tidings_env(closed, "file://outbox"), cwd=tmp_path,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("Error: The database cannot be reached right now"), done.stderr
    assert "Connection refused" in last and "TIDINGS_DATABASE_URL" in last
