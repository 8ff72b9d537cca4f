"""The contract's commands, run as a user runs them."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tidings.services import tokens, users

TIDINGS = str(Path(sys.executable).with_name("tidings"))


def run(db_url: str, cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "TIDINGS_DATABASE_URL": db_url, "TIDINGS_SECRET_KEY": "test-secret-key",
           "TIDINGS_LOG_LEVEL": "WARNING"}
    return subprocess.run([TIDINGS, *args], env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


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
