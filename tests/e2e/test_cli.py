"""The contract's commands, run as a user runs them."""

from __future__ import annotations

import email
import email.policy
import os
import queue
import re
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest

from tests.serving import free_port, wait_until_healthy
from tidings.config import Settings
from tidings.errors import Unauthorized
from tidings.services import tokens, users
from tidings.services.context import Context
from tidings.store.db import make_engine

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def environment(db_url: str, extra: dict[str, str] | None) -> dict[str, str]:
    return {**os.environ, "TIDINGS_DATABASE_URL": db_url,
            "TIDINGS_SECRET_KEY": "test-secret-key-at-least-32-characters",
            "TIDINGS_LOG_LEVEL": "WARNING", **(extra or {})}


def run(db_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None,
        stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    # A new session has no controlling terminal, so a hidden prompt reads stdin.
    return subprocess.run([TIDINGS, *args], env=environment(db_url, env), cwd=cwd, input=stdin,
                          capture_output=True, text=True, timeout=120, check=False,
                          start_new_session=True)


def test_help_lists_the_contract_commands(db_url, tmp_path):
    out = run(db_url, tmp_path, "--help")
    assert out.returncode == 0
    for command in ("serve", "worker", "migrate", "token", "user", "demo"):
        assert command in out.stdout


def test_token_create_prints_a_working_token_alone_on_the_last_line(db_url, tmp_path, make_ctx):
    assert run(db_url, tmp_path, "migrate").returncode == 0
    out = run(db_url, tmp_path, "token", "create", "--name", "ci", "--role", "admin")
    assert out.returncode == 0, out.stderr
    token = out.stdout.strip().splitlines()[-1]
    assert token.startswith("tid_") and " " not in token
    assert tokens.authenticate(make_ctx(admin_token=None), token).is_admin


def test_user_create_makes_a_person_who_can_sign_in_and_refuses_a_twin(db_url, tmp_path, make_ctx):
    first = run(db_url, tmp_path, "user", "create", "--email", "Boss@Shop.example",
                "--password", "long enough", "--role", "admin")
    assert first.returncode == 0, first.stderr
    assert users.sign_in(make_ctx(), email="boss@shop.example", password="long enough").is_admin
    twin = run(db_url, tmp_path, "user", "create", "--email", "boss@shop.example", "--password", "x" * 9)
    assert twin.returncode != 0 and "already exists" in twin.stderr


def test_demo_seeds_customers_segments_templates_and_a_draft(db_url, tmp_path, make_ctx, api_for):
    out = run(db_url, tmp_path, "demo")
    assert out.returncode == 0, out.stderr
    api = api_for(make_ctx())
    assert len(api.ok("GET", "/customers?limit=500")["customers"]) == 200
    assert len(api.ok("GET", "/segments")["segments"]) == 2
    assert {t["channel"] for t in api.ok("GET", "/templates")["templates"]} == {"email", "sms"}
    assert [m["status"] for m in api.ok("GET", "/mailings")["mailings"]] == ["draft"]


def test_demo_customers_sender_and_segments_are_recognisably_demo(db_url, tmp_path, make_ctx, api_for):
    api = api_for(make_ctx())
    api.ok("POST", "/customers", {"email": "real@shop.example"}, status=201)
    assert run(db_url, tmp_path, "demo").returncode == 0
    customers = api.ok("GET", "/customers?limit=500")["customers"]
    demo = [c for c in customers if c["email"] != "real@shop.example"]
    assert len(demo) == 200
    assert all(c["email"].endswith("@demo.example.com") for c in demo)
    assert all(c["phone"].startswith("+447700900") for c in demo)  # Ofcom's drama range
    # the demo's segments hold the demo customers only, never a real one
    counts = [api.ok("GET", f"/segments/{s['id']}/count")["count"]
              for s in api.ok("GET", "/segments")["segments"]]
    assert counts[0] == 200 and 0 < counts[1] < 200
    (draft,) = api.ok("GET", "/mailings")["mailings"]
    assert (draft["from_email"], draft["from_name"]) == ("demo-shop@demo.example.com",
                                                          "Demo shop (Tidings)")


def test_demo_send_is_refused_for_a_mail_server_before_seeding(db_url, tmp_path, make_ctx, api_for):
    out = run(db_url, tmp_path, "demo", "--send", env={"TIDINGS_SMTP_URL": "smtp://127.0.0.1:2525"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "Error: The demo mailing is written to the outbox only, and TIDINGS_SMTP_URL names a mail "
        "server; unset TIDINGS_SMTP_URL, or seed without sending (tidings demo)."]
    assert api_for(make_ctx()).ok("GET", "/customers")["customers"] == []


# -- tidings serve ------------------------------------------------------------------


class Lines:
    """The lines of a child's output, read by a thread so a test can wait with a timeout."""

    def __init__(self, stream: IO[str] | None) -> None:
        assert stream is not None
        self.queue: queue.Queue[str | None] = queue.Queue()

        def pump() -> None:
            for line in stream:
                self.queue.put(line.rstrip("\n"))
            self.queue.put(None)

        threading.Thread(target=pump, daemon=True).start()

    def next(self, *, timeout: float) -> str | None:
        """The next line; ``None`` at the end of the output or after ``timeout`` seconds."""
        try:
            return self.queue.get(timeout=timeout)
        except queue.Empty:
            return None


class Served:
    """A ``tidings serve`` process, its output until the token line, and its port."""

    def __init__(self, db_url: str, cwd: Path, *args: str, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen(
            [TIDINGS, "serve", "--port", str(self.port), *args], cwd=cwd, text=True,
            env=environment(db_url, env), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: list[str] = []
        stdout = Lines(self.proc.stdout)
        while not (self.lines and self.lines[-1].startswith("Admin API token")):
            line = stdout.next(timeout=60)
            if line is None:
                self.proc.kill()
                raise AssertionError(f"serve stopped: {self.lines} {self.proc.communicate()[1]}")
            self.lines.append(line)
        self.url = f"http://127.0.0.1:{self.port}"
        wait_until_healthy(self.url, self.proc, timeout=30, output=lambda: self.lines)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)

    @property
    def token(self) -> str:
        return self.lines[-1].rsplit(" ", 1)[-1]

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        self.proc.communicate(timeout=30)


@pytest.fixture
def serve(db_url, tmp_path):  # type: ignore[no-untyped-def]
    started: list[Served] = []

    def start(*args: str, env: dict[str, str] | None = None) -> Served:
        served = Served(db_url, tmp_path, *args, env=env)
        started.append(served)
        return served

    yield start
    for served in started:
        if served.proc.poll() is None:
            served.stop()


def wait_for(predicate, what: str, timeout: float = 30):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := predicate()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return result


def test_serve_alone_seeds_nothing_and_sends_nothing(serve, tmp_path, make_ctx, api_for):
    served = serve()
    assert f"Tidings is at http://127.0.0.1:{served.port}/" in served.output
    assert "demo" not in served.output.lower()
    api = api_for(make_ctx())
    assert api.ok("GET", "/customers")["customers"] == []
    for what in ("segments", "templates", "mailings"):
        assert api.ok("GET", f"/{what}")[what] == []
    time.sleep(1)  # a worker that had something to send would have written it by now
    assert not list((tmp_path / "outbox").glob("*"))


def test_links_in_messages_point_at_the_port_serve_listens_on(serve, tmp_path):
    served = serve()
    assert "Links in messages" not in served.output  # nothing to say: they follow the port
    api = httpx.Client(base_url=f"{served.url}/api/v1",
                       headers={"Authorization": f"Bearer {served.token}"})
    api.post("/customers", json={"email": "ann@shop.example"}).raise_for_status()
    segment = api.post("/segments", json={"name": "All", "rules": {}}).json()
    template = api.post("/templates", json={
        "name": "Hi", "channel": "email", "subject": "Hi",
        "html": '<p><a href="https://shop.example/new">New</a> <a href="{{ unsubscribe_url }}">Stop</a></p>',
    }).json()
    mailing = api.post("/mailings", json={"name": "Hi", "segment_id": segment["id"],
                                          "template_id": template["id"]}).json()
    api.post(f"/mailings/{mailing['id']}/send").raise_for_status()
    (path,) = wait_for(lambda: list((tmp_path / "outbox").glob("*.eml")), "the message")
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    links = re.findall(r'(?:href|src)="([^"]+)"', html)
    assert len(links) >= 3  # the click link, the unsubscribe link and the open pixel
    assert all(link.startswith(f"{served.url}/") for link in links), links
    assert message["List-Unsubscribe"].startswith(f"<{served.url}/u/")


def test_serve_says_once_when_the_public_url_is_another_address(serve):
    served = serve(env={"TIDINGS_PUBLIC_URL": "https://news.shop.example/"})
    said = [line for line in served.lines if "Links in messages" in line]
    assert said == [f"Links in messages point at https://news.shop.example (TIDINGS_PUBLIC_URL), "
                    f"not at {served.url} where this server listens."]


def test_serve_demo_seeds_demo_data_once_and_writes_the_demo_mailing_to_the_outbox(
        serve, tmp_path, make_ctx, api_for):
    served = serve("--demo")
    assert "Seeded demo data" in served.output
    api = api_for(make_ctx())
    customers = api.ok("GET", "/customers?limit=500")["customers"]
    assert len(customers) == 200
    assert all(c["email"].endswith("@demo.example.com") for c in customers)
    wait_for(lambda: len(list((tmp_path / "outbox").glob("*.eml"))) == 200, "the demo mailing")
    message = email.message_from_bytes(next((tmp_path / "outbox").glob("*.eml")).read_bytes(),
                                       policy=email.policy.default)
    assert message["From"] == '"Demo shop (Tidings)" <demo-shop@demo.example.com>'
    assert message["List-Unsubscribe"].startswith(f"<{served.url}/u/")
    served.stop()

    again = serve("--demo")
    assert "The database has customers already; --demo seeds nothing." in again.lines
    assert len(api.ok("GET", "/customers?limit=500")["customers"]) == 200
    assert len(api.ok("GET", "/mailings")["mailings"]) == 2


def test_serve_demo_is_refused_with_a_mail_server_before_anything_is_made(tmp_path):
    db = tmp_path / "fresh.db"
    out = run(f"sqlite:///{db}", tmp_path, "serve", "--demo", "--port", str(free_port()),
              env={"TIDINGS_SMTP_URL": "smtp://127.0.0.1:2525"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "Error: --demo: The demo mailing is written to the outbox only, and TIDINGS_SMTP_URL "
        "names a mail server; unset TIDINGS_SMTP_URL, or seed without sending (tidings demo)."]
    assert not db.exists()


def test_a_busy_port_stops_serve_with_one_line_before_migrating(tmp_path):
    db = tmp_path / "fresh.db"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        out = run(f"sqlite:///{db}", tmp_path, "serve", "--port", str(port))
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        f"Error: Cannot listen on 127.0.0.1:{port}: the port is in use (is Tidings already "
        "running?); stop that or choose another --port."]
    assert out.stdout == ""
    assert not db.exists() and not (tmp_path / "tidings-admin.token").exists()


def test_the_printed_user_create_command_works_from_any_directory(tmp_path):
    shop, elsewhere = tmp_path / "shop", tmp_path / "elsewhere"
    shop.mkdir()
    elsewhere.mkdir()
    served = Served("sqlite:///tidings.db", shop)  # a path relative to where serve runs
    try:
        hint = served.lines[served.lines.index(
            "Nobody can sign in to the web UI yet; create a person with") + 1]
        assert f"(kept in {shop / 'tidings-admin.token'})" in served.lines[-1]
    finally:
        served.stop()
    command = shlex.split(hint)
    assert command[0] == f"TIDINGS_DATABASE_URL=sqlite:///{shop / 'tidings.db'}"
    assert Path(command[1]).is_absolute()
    env = {k: v for k, v in os.environ.items() if not k.startswith("TIDINGS_")}
    env["TIDINGS_DATABASE_URL"] = command[0].split("=", 1)[1]
    done = subprocess.run([*command[1:], "--password", "long enough"], cwd=elsewhere, env=env,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert not (elsewhere / "tidings.db").exists()
    url = f"sqlite:///{shop / 'tidings.db'}"
    ctx = Context(settings=Settings(_env_file=None, database_url=url), engine=make_engine(url))  # type: ignore[call-arg]
    try:
        assert users.sign_in(ctx, email="you@example.com", password="long enough").is_admin
    finally:
        ctx.close()


def test_user_create_asks_for_the_password_twice_without_showing_it(db_url, tmp_path, make_ctx):
    out = run(db_url, tmp_path, "user", "create", "--email", "ann@shop.example",
              stdin="secret words\nsecret words\n")
    assert out.returncode == 0, out.stderr
    assert "Password" in out.stdout + out.stderr and "Repeat for confirmation" in out.stdout + out.stderr
    assert "secret words" not in out.stdout + out.stderr
    assert users.sign_in(make_ctx(), email="ann@shop.example", password="secret words")

    mismatch = run(db_url, tmp_path, "user", "create", "--email", "bob@shop.example",
                   stdin="secret words\nother words\n")
    assert mismatch.returncode != 0
    with pytest.raises(Unauthorized):
        users.sign_in(make_ctx(), email="bob@shop.example", password="secret words")


def test_a_worker_says_where_its_links_point_when_no_public_url_is_set(db_url, tmp_path):
    env = environment(db_url, None)
    env.pop("TIDINGS_PUBLIC_URL", None)
    proc = subprocess.Popen([TIDINGS, "worker"], cwd=tmp_path, env=env, text=True,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        first = Lines(proc.stderr).next(timeout=30)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert first is not None
    assert first.startswith("TIDINGS_PUBLIC_URL is not set: links in the messages this worker "
                            "sends point at http://127.0.0.1:8000.")


def test_a_bad_setting_is_one_line_naming_its_variable(tmp_path):
    out = run(f"sqlite:///{tmp_path / 'fresh.db'}", tmp_path, "migrate",
              env={"TIDINGS_PUBLIC_URL": "news.shop.example"})
    assert out.returncode != 0
    assert out.stderr.strip().splitlines() == [
        "Error: TIDINGS_PUBLIC_URL: must be the http:// or https:// address "
        "where people reach Tidings, e.g. https://news.shop.example; got 'news.shop.example'"]
