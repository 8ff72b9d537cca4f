"""What ``tidings`` leaves on disk and in its output: the database (which holds the
secret key), its -wal/-shm files, the outbox and the admin token file are the
running user's alone, whatever the umask; ``TIDINGS_ADMIN_TOKEN`` is never
printed; ``tidings user reset`` prints a one-time link that works."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from tests.e2e.test_cli import TIDINGS, Served, environment, run
from tidings.api.app import create_app
from tidings.config import Settings
from tidings.errors import Unauthorized
from tidings.services import users
from tidings.services.context import Context
from tidings.store.db import make_engine

pytestmark = pytest.mark.slow


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def open_umask():  # type: ignore[no-untyped-def]
    """Run the commands the way a careless shell would: files world-readable by default."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def test_serve_demo_creates_the_database_outbox_and_token_file_for_its_user_only(
        tmp_path: Path, open_umask: None) -> None:
    served = Served("sqlite:///tidings.db", tmp_path, "--demo")
    try:
        outbox = tmp_path / "outbox"
        files = {"tidings.db": tmp_path / "tidings.db", "tidings.db-wal": tmp_path / "tidings.db-wal",
                 "tidings.db-shm": tmp_path / "tidings.db-shm",
                 "tidings-admin.token": tmp_path / "tidings-admin.token"}
        messages = list(outbox.glob("*.eml"))
        assert messages, "the demo mailing was written to the outbox"
        assert {name: oct(mode(path)) for name, path in files.items()} == {
            name: oct(0o600) for name in files}
        assert oct(mode(outbox)) == oct(0o700)
        assert {oct(mode(m)) for m in messages} == {oct(0o600)}
    finally:
        served.stop()


def test_a_database_made_world_readable_is_made_private_again(tmp_path: Path, open_umask: None) -> None:
    db = tmp_path / "tidings.db"
    assert run(f"sqlite:///{db}", tmp_path, "migrate").returncode == 0
    db.chmod(0o644)
    assert run(f"sqlite:///{db}", tmp_path, "token", "create", "--name", "ci").returncode == 0
    assert oct(mode(db)) == oct(0o600)


def test_serve_never_prints_the_admin_token_it_was_given(db_url: str, tmp_path: Path) -> None:
    secret = "an-admin-token-from-the-environment-0123456789"
    served = Served(db_url, tmp_path, env={"TIDINGS_ADMIN_TOKEN": secret})
    try:
        assert served.lines[-1] == "Admin API token: the one in TIDINGS_ADMIN_TOKEN."
    finally:
        served.stop()
    assert secret not in served.output
    assert not (tmp_path / "tidings-admin.token").exists()


def test_user_reset_prints_a_link_that_sets_a_new_password_once(db_url: str, tmp_path: Path) -> None:
    env = {"TIDINGS_PUBLIC_URL": "https://news.shop.example"}
    assert run(db_url, tmp_path, "user", "create", "--email", "ann@shop.example", "--role", "admin",
               "--password", "old password").returncode == 0

    out = run(db_url, tmp_path, "user", "reset", "--email", "Ann@Shop.example", env=env)
    nobody = run(db_url, tmp_path, "user", "reset", "--email", "zed@shop.example", env=env)

    assert out.returncode == 0, out.stderr
    link = out.stdout.strip().splitlines()[-1]
    assert link.startswith("https://news.shop.example/reset/") and " " not in link
    assert "ann@shop.example is signed out and their password no longer works" in out.stdout
    assert nobody.returncode == 1
    assert nobody.stderr.strip() == "Error: There is no person with the email zed@shop.example."
    settings = Settings(_env_file=None, database_url=db_url, secret_key="test-secret-key")  # type: ignore[call-arg]
    ctx = Context(settings=settings, engine=make_engine(db_url))
    try:
        with pytest.raises(Unauthorized):
            users.sign_in(ctx, email="ann@shop.example", password="old password")
        with TestClient(create_app(ctx)) as client:
            path = link.removeprefix("https://news.shop.example")
            form = client.get(path)
            assert form.status_code == 200
            csrf = form.text.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
            client.post(path, data={"password": "new password", "password_again": "new password",
                                    "csrf_token": csrf})
            assert client.get(path).status_code == 404
        assert users.sign_in(ctx, email="ann@shop.example", password="new password").is_admin
    finally:
        ctx.close()


def test_the_help_names_user_reset() -> None:
    out = subprocess.run([TIDINGS, "user", "--help"], capture_output=True, text=True, timeout=60,
                         env=environment("sqlite:///unused.db", None), check=False)
    assert "reset" in out.stdout and "create" in out.stdout
