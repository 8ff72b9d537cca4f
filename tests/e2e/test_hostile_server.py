"""``tidings serve`` against hostile requests, run under an address-space and
CPU limit (``tests/limits.py``) so a regression fails here instead of taking
the machine: templates built to exhaust memory or CPU, many of them at once,
the web UI's live preview, a large CSV import while other routes must answer,
bodies over their limit, and secrets too short to be secret."""

from __future__ import annotations

import concurrent.futures
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.limits import limited_env, limits
from tests.serving import free_port, wait_until_healthy

pytestmark = pytest.mark.slow

TIDINGS = str(Path(sys.executable).with_name("tidings"))
TOKEN = "hostile-test-admin-token-of-forty-characters"
SECRET = "hostile-test-secret-key-of-forty-characters!"
PASSWORD = "a long enough password"
#: The server's address space: several times what it needs (about 300 MB with its
#: threads), far below what the templates below would take unchecked.
MEMORY = 3 * 1024 * 1024 * 1024
COSTLY = [
    "{% for i in range(100000) %}{{ 'x' * 100000 }}{% endfor %}",
    "{% for i in range(100000) %}{% for j in range(100000) %}{{ i }}{% endfor %}{% endfor %}",
    "{{ lipsum(n=10000000) }}",
    "{{ 'x'|center(10**9) }}",
    "{{ 'x'|indent(1000000000) }}",
    "{{ '%01000000000d'|format(1) }}",
]
#: Fine for the sample customer; too costly for a customer whose n is large.
DATA_DEPENDENT = ("<p>{% for i in range(customer.attributes.n or 1) %}"
                  "{% for j in range(customer.attributes.n or 1) %}{% endfor %}{% endfor %}Hi</p>")


class Server:
    def __init__(self, db_url: str, cwd: Path, **env: str) -> None:
        self.env = limited_env(TIDINGS_DATABASE_URL=db_url, TIDINGS_SECRET_KEY=SECRET,
                               TIDINGS_ADMIN_TOKEN=TOKEN, TIDINGS_LOG_LEVEL="WARNING",
                               TIDINGS_POLL_INTERVAL="0.1", **env)
        self.cwd = cwd
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen([TIDINGS, "serve", "--port", str(self.port)], cwd=cwd, env=self.env,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                     preexec_fn=limits(memory=MEMORY, cpu_seconds=600))
        wait_until_healthy(self.url, self.proc)
        self.api = httpx.Client(base_url=f"{self.url}/api/v1", timeout=300,
                                headers={"Authorization": f"Bearer {TOKEN}"})

    def peak_mb(self) -> float:
        status = Path(f"/proc/{self.proc.pid}/status").read_text()
        found = re.search(r"VmHWM:\s+(\d+) kB", status)
        assert found is not None
        return int(found.group(1)) / 1024

    def alive(self) -> bool:
        return self.proc.poll() is None and httpx.get(f"{self.url}/healthz", timeout=5).status_code == 200

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


@pytest.fixture
def server(db_url: str, tmp_path: Path) -> Iterator[Server]:
    served = Server(db_url, tmp_path)
    yield served
    served.stop()


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def refused(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    error: dict[str, Any] = response.json()["error"]
    assert error["code"] == code, error
    return error


def test_templates_that_took_the_server_down_are_refused_and_it_keeps_answering(server: Server) -> None:
    for source in COSTLY:
        start = time.monotonic()
        error = refused(server.api.post("/templates", json={"name": "t", "channel": "email",
                                                           "subject": "Hi", "html": source}),
                        422, "template_too_costly")
        assert error["field"] == "html" and time.monotonic() - start < 10

    template = ok(server.api.post("/templates", json={"name": "t", "channel": "email", "subject": "Hi",
                                                      "html": DATA_DEPENDENT}), 201)
    big = ok(server.api.post("/customers", json={"email": "big@example.org",
                                                 "attributes": {"n": 100000}}), 201)
    preview = f"/templates/{template['id']}/preview"

    def previews(_: int) -> int:
        return server.api.post(preview, json={"customer_id": big["id"]}).status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=40) as pool:
        answers = pool.map(previews, range(40))
        time.sleep(0.5)
        start = time.monotonic()
        assert server.alive()  # other routes answer meanwhile
        assert time.monotonic() - start < 5
        assert list(answers) == [422] * 40

    assert ok(server.api.post(preview, json={}))["html"] == "<p>Hi</p>"
    assert server.alive() and server.peak_mb() < 1024


def test_the_web_live_preview_is_bounded_too(db_url: str, tmp_path: Path) -> None:
    env = {**limited_env(TIDINGS_DATABASE_URL=db_url, TIDINGS_SECRET_KEY=SECRET)}
    created = subprocess.run([TIDINGS, "user", "create", "--email", "ann@shop.example", "--password",
                              PASSWORD, "--role", "admin"], cwd=tmp_path, env=env, capture_output=True,
                             text=True, timeout=120, check=False)
    assert created.returncode == 0, created.stderr
    server = Server(db_url, tmp_path)
    try:
        web = httpx.Client(base_url=server.url, timeout=60)
        token = re.findall(r'name="csrf_token" value="([^"]+)"', web.get("/sign-in").text)[0]
        signed = web.post("/sign-in", data={"email": "ann@shop.example", "password": PASSWORD,
                                            "csrf_token": token, "next": ""})
        assert signed.status_code == 303
        csrf = re.findall(r'name="csrf_token" value="([^"]+)"', web.get("/templates/new").text)[0]

        start = time.monotonic()
        shown = web.post("/templates/preview", headers={"X-CSRF-Token": csrf},
                         data={"channel": "email", "subject": "Hi", "html": COSTLY[0]})

        assert shown.status_code == 200 and "too costly to render" in shown.text
        assert time.monotonic() - start < 10
        assert server.alive()
    finally:
        server.stop()


def test_a_mailing_whose_template_is_too_costly_for_its_first_customer_is_refused_at_send(
        server: Server) -> None:
    ok(server.api.post("/customers", json={"customers": [
        {"email": "big@example.org", "attributes": {"n": 100000}},
        {"email": "small@example.org", "attributes": {"n": 3}}]}), 201)
    segment = ok(server.api.post("/segments", json={"name": "all", "rules": {}}), 201)
    template = ok(server.api.post("/templates", json={"name": "t", "channel": "email", "subject": "Hi",
                                                      "html": DATA_DEPENDENT}), 201)
    mailing = ok(server.api.post("/mailings", json={"name": "m", "segment_id": segment["id"],
                                                    "template_id": template["id"]}), 201)

    error = refused(server.api.post(f"/mailings/{mailing['id']}/send"), 422, "template_too_costly")

    assert error["field"] == "template_id"
    assert ok(server.api.get(f"/mailings/{mailing['id']}"))["status"] == "draft"


def test_a_message_too_costly_for_one_customer_fails_alone_while_the_rest_is_sent(
        server: Server) -> None:
    ok(server.api.post("/customers", json={"customers": [
        {"email": f"c{i}@example.org", "attributes": {"n": 3}} for i in range(5)]
        + [{"email": "big@example.org", "attributes": {"n": 100000}}]}), 201)
    segment = ok(server.api.post("/segments", json={"name": "all", "rules": {}}), 201)
    template = ok(server.api.post("/templates", json={"name": "t", "channel": "email", "subject": "Hi",
                                                      "html": DATA_DEPENDENT}), 201)
    mailing = ok(server.api.post("/mailings", json={"name": "m", "segment_id": segment["id"],
                                                    "template_id": template["id"]}), 201)

    ok(server.api.post(f"/mailings/{mailing['id']}/send"))
    deadline = time.monotonic() + 60
    while (shown := ok(server.api.get(f"/mailings/{mailing['id']}")))["status"] == "sending":
        assert time.monotonic() < deadline
        time.sleep(0.2)

    assert shown["status"] == "sent"
    assert (shown["progress"]["sent"], shown["progress"]["failed"]) == (5, 1)
    assert len(list((server.cwd / "outbox").glob("*.eml"))) == 5


def test_a_large_csv_import_runs_off_the_event_loop_and_a_larger_one_is_refused(server: Server) -> None:
    # Over 20 MB (12 MB froze every route for 5.5 s), in 120,000 rows: the size is
    # the point, more rows would only make the test longer.
    rows = "".join(f"c{i}@example.org,Name{i},{'x' * 180}\n" for i in range(120_000))
    data = ("email,first_name,note\n" + rows).encode()
    assert len(data) > 20 * 1024 * 1024

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        imported = pool.submit(server.api.post, "/customers/import", content=data,
                               headers={"Content-Type": "text/csv"})
        started = time.monotonic()
        time.sleep(1.0)  # the body is in, the rows are being read and stored
        waits = []
        while not imported.done():
            start = time.monotonic()
            assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
            waits.append(time.monotonic() - start)
            time.sleep(0.2)
        result = ok(imported.result())
        took = time.monotonic() - started

    assert (result["created"], result["errors"]) == (120_000, [])
    # An import on the event loop held every route for its whole run; off the loop
    # another route answers many times while it runs, each time in a small part of
    # it (a share, not seconds: the machine may be busy with other work).
    assert len(waits) >= 5 and max(waits) < took / 4, (took, waits)
    too_big = b"email\n" + b"x@example.org\n" * (4 * 1024 * 1024)  # 58 MB, past the 50 MiB limit
    refused(server.api.post("/customers/import", content=too_big, headers={"Content-Type": "text/csv"}),
            413, "too_large")
    assert server.alive() and server.peak_mb() < 1536


@pytest.mark.parametrize("variable", ["TIDINGS_ADMIN_TOKEN", "TIDINGS_SECRET_KEY"])
def test_serve_refuses_a_short_admin_token_or_secret_key(variable: str, db_url: str, tmp_path: Path) -> None:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_SECRET_KEY": SECRET,
           "TIDINGS_ADMIN_TOKEN": TOKEN, variable: "x"}

    done = subprocess.run([TIDINGS, "serve", "--port", str(free_port())], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60, check=False)

    assert done.returncode == 1
    assert f"{variable} has 1 characters; it needs at least 32" in done.stderr
    assert "Tidings is at" not in done.stdout and not (tmp_path / "tidings-admin.token").exists()
