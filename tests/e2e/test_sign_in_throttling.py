"""Sign-in throttling: an address typed is locked after five wrong passwords, for
longer each time, saying for how long; a network that fails too often is slowed
before any password is checked; argon2 work is bounded."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from datetime import timedelta

import pytest
from argon2 import PasswordHasher
from fastapi.testclient import TestClient

from tidings.api.app import create_app
from tidings.errors import RateLimited
from tidings.services import users
from tidings.services.context import Context

PASSWORD = "long enough password"
LOCKED = "Too many attempts for this account: try again in {} minutes."


@pytest.fixture
def ctx(make_ctx) -> Context:  # type: ignore[no-untyped-def]
    made: Context = make_ctx(trust_proxy=True)
    users.create_user(made, email="ann@shop.example", password=PASSWORD, role="admin")
    return made


@pytest.fixture
def client(ctx: Context) -> Iterator[TestClient]:
    with TestClient(create_app(ctx), follow_redirects=False) as made:
        yield made


def attempt(client: TestClient, email: str, password: str, *, address: str = "198.51.100.7") -> object:
    page = client.get("/sign-in", headers={"X-Forwarded-For": address})
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token
    return client.post("/sign-in", headers={"X-Forwarded-For": address},
                       data={"email": email, "password": password, "csrf_token": token.group(1)})


def said(response: object) -> str:
    found = re.search(r'<p class="form-error" role="alert">([^<]*)</p>', response.text)  # type: ignore[attr-defined]
    return found.group(1) if found else ""


def test_five_wrong_passwords_lock_the_account_for_15_minutes_even_against_the_right_one(
        client: TestClient, ctx: Context) -> None:
    start = ctx.now()
    ctx.clock = lambda: start
    answers = [attempt(client, "ann@shop.example", "wrong guess") for _ in range(5)]
    assert [r.status_code for r in answers] == [401, 401, 401, 401, 429]  # type: ignore[attr-defined]
    assert said(answers[0]) == "Wrong email or password."
    assert said(answers[4]) == LOCKED.format(15)

    ctx.clock = lambda: start + timedelta(minutes=3, seconds=30)
    right = attempt(client, "ann@shop.example", PASSWORD)
    assert right.status_code == 429  # type: ignore[attr-defined]
    assert said(right) == LOCKED.format(12)
    assert right.headers["retry-after"] == str(11 * 60 + 30)  # type: ignore[attr-defined]

    ctx.clock = lambda: start + timedelta(minutes=15, seconds=1)
    assert attempt(client, "ann@shop.example", PASSWORD).status_code == 303  # type: ignore[attr-defined]


def test_the_lockout_grows_and_a_success_starts_the_count_again(client: TestClient, ctx: Context) -> None:
    start = ctx.now()
    for _ in range(5):
        attempt(client, "ann@shop.example", "wrong")
    ctx.clock = lambda: start + timedelta(minutes=16)
    answers = [attempt(client, "ann@shop.example", "wrong") for _ in range(5)]
    assert said(answers[-1]) == LOCKED.format(30)

    ctx.clock = lambda: start + timedelta(minutes=47)
    assert attempt(client, "ann@shop.example", PASSWORD).status_code == 303  # type: ignore[attr-defined]
    client.cookies.clear()
    later = [attempt(client, "ann@shop.example", "wrong") for _ in range(4)]
    assert {r.status_code for r in later} == {401}  # type: ignore[attr-defined]


def test_an_address_nobody_has_is_locked_the_same_way_so_a_lockout_tells_nothing(
        client: TestClient) -> None:
    someone = [attempt(client, "ann@shop.example", "wrong") for _ in range(5)]
    nobody = [attempt(client, "zed@shop.example", "wrong", address="198.51.100.8") for _ in range(5)]
    assert [said(r) for r in someone] == [said(r) for r in nobody]
    assert said(nobody[-1]) == LOCKED.format(15)


def test_a_network_that_fails_too_often_is_refused_before_any_password_is_checked(
        client: TestClient, ctx: Context) -> None:
    limit = next(x for x in client.app.state.rate_limits if x.name == "failed sign-ins")  # type: ignore[attr-defined]
    failures = int(limit.rate.capacity)
    for i in range(failures):  # a different account each time: no account lockout
        assert attempt(client, f"guess{i}@shop.example", "wrong").status_code == 401  # type: ignore[attr-defined]

    refused = attempt(client, "ann@shop.example", PASSWORD)
    elsewhere = attempt(client, "ann@shop.example", PASSWORD, address="203.0.113.9")

    assert refused.status_code == 429  # type: ignore[attr-defined]
    assert "Too many failed sign-ins from your network: try again in" in refused.text  # type: ignore[attr-defined]
    assert '<a href="/sign-in">Back to sign-in</a>' in refused.text  # type: ignore[attr-defined]
    assert int(refused.headers["retry-after"]) >= 1  # type: ignore[attr-defined]
    assert elsewhere.status_code == 303  # type: ignore[attr-defined]


class CountingHasher(PasswordHasher):
    """The real argon2 hasher, counting how many of its hashes run at once."""

    def __init__(self) -> None:
        super().__init__()
        self.lock = threading.Lock()
        self.running = 0
        self.most = 0

    def _enter(self) -> None:
        with self.lock:
            self.running += 1
            self.most = max(self.most, self.running)

    def _leave(self) -> None:
        with self.lock:
            self.running -= 1

    def hash(self, password: str | bytes, *, salt: bytes | None = None) -> str:
        self._enter()
        try:
            return super().hash(password, salt=salt)
        finally:
            self._leave()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        self._enter()
        try:
            return super().verify(hash, password)
        finally:
            self._leave()


def test_no_more_than_a_few_password_hashes_run_at_once(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    hasher = CountingHasher()
    monkeypatch.setattr(users, "_hasher", hasher)
    outcomes: list[str] = []

    def sign_in(i: int) -> None:
        try:
            users.sign_in(ctx, email=f"p{i}@shop.example", password="wrong")
        except Exception as exc:  # noqa: BLE001 - recorded and asserted below
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=sign_in, args=(i,)) for i in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert outcomes == ["Unauthorized"] * 16
    assert 1 <= hasher.most <= users.HASHES_AT_ONCE


def test_a_sign_in_that_cannot_get_its_turn_to_hash_is_refused_with_a_retry(
        ctx: Context, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(users, "HASH_WAIT", 0.2)
    taken = [users._hashing.acquire(timeout=5) for _ in range(users.HASHES_AT_ONCE)]
    try:
        with pytest.raises(RateLimited) as busy:
            users.sign_in(ctx, email="ann@shop.example", password=PASSWORD)
    finally:
        for _ in taken:
            users._hashing.release()
    assert busy.value.code == "busy" and busy.value.retry_after > 0
    assert users.sign_in(ctx, email="ann@shop.example", password=PASSWORD).is_admin
