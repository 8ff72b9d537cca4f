"""The worker inside ``tidings serve`` gives way to the requests being answered,
within its share (:mod:`tidings.engine.foreground`), and the web server counts
those requests (:class:`tidings.api.app.CountRequests`)."""

from __future__ import annotations

import asyncio
import threading

from starlette.types import Receive, Scope, Send

from tidings.api.app import CountRequests
from tidings.engine.foreground import SHARE, STEP, Foreground
from tidings.engine.window import render_each


class Clock:
    """A clock that moves only when the worker sleeps; each sleep can end a request."""

    def __init__(self, foreground: Foreground | None = None, *, requests_end_after: float = 1e9) -> None:
        self.now = 100.0
        self.slept = 0.0
        self.foreground = foreground
        self.end = requests_end_after

    def monotonic(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept += seconds
        if self.foreground is not None and self.slept >= self.end:
            self.foreground.active = 0


def foreground_with(clock: Clock) -> Foreground:
    fg = Foreground(monotonic=clock.monotonic, sleep=clock.sleep)
    clock.foreground = fg
    return fg


def test_nobody_to_give_way_to_costs_nothing() -> None:
    clock = Clock()
    fg = foreground_with(clock)
    assert fg.give_way() == 0.0
    assert clock.slept == 0.0


def test_the_worker_waits_while_a_request_is_answered() -> None:
    clock = Clock(requests_end_after=0.004)
    fg = foreground_with(clock)
    fg.enter()
    waited = fg.give_way()
    assert 0.004 <= waited < 0.004 + 2 * STEP
    assert fg.active == 0  # it came back because the request ended, not before


def test_a_flood_of_requests_gets_at_most_its_share_of_each_second() -> None:
    clock = Clock()
    fg = foreground_with(clock)
    fg.enter()  # a request that never ends
    first = fg.give_way()
    assert SHARE <= first < SHARE + 2 * STEP
    assert fg.give_way() == 0.0  # the share of this second is used up: the worker sends
    clock.now += 1 - SHARE + STEP  # the next second
    assert SHARE <= fg.give_way() < SHARE + 2 * STEP


def test_render_each_gives_way_between_messages() -> None:
    calls: list[str] = []

    class Renderer:
        def envelope(self, recipient: int) -> str:
            calls.append(f"render {recipient}")
            return f"message {recipient}"

    class Counting(Foreground):
        def give_way(self) -> float:
            calls.append("give way")
            return 0.0

    fg = Counting()
    envelopes, broken = render_each(Renderer(), [1, 2], fg)  # type: ignore[arg-type]
    assert envelopes == ["message 1", "message 2"] and broken == {}
    assert calls == ["render 1", "render 2"]  # nobody waiting: not even asked
    calls.clear()
    fg.enter()
    render_each(Renderer(), [1, 2], fg)  # type: ignore[arg-type]
    assert calls == ["give way", "render 1", "give way", "render 2"]


def test_the_web_server_counts_the_requests_it_answers() -> None:
    fg = Foreground()
    seen: list[int] = []
    inside = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(fg.active)
        inside.set()
        if scope.get("path") == "/fails":
            raise RuntimeError("the route failed")

    async def receive() -> dict[str, object]:
        return {"type": "http.request", "body": b""}

    async def send(message: object) -> None:
        return None

    middleware = CountRequests(app, fg)
    asyncio.run(middleware({"type": "http", "path": "/"}, receive, send))
    try:
        asyncio.run(middleware({"type": "http", "path": "/fails"}, receive, send))
    except RuntimeError:
        pass
    asyncio.run(middleware({"type": "lifespan"}, receive, send))
    asyncio.run(middleware({"type": "http", "path": "/t/o/some-token"}, receive, send))
    asyncio.run(middleware({"type": "http", "path": "/u/some-token"}, receive, send))
    asyncio.run(middleware({"type": "http", "path": "/api/v1/mailings/1"}, receive, send))
    # Counted while answered; the app's life is no request, nor is a recipient's open,
    # click or unsubscribe page (a mailing that many open must not slow its own sending).
    assert seen == [1, 1, 0, 0, 0, 1]
    assert fg.active == 0  # a failed request is no longer counted either


def test_serve_s_worker_gives_way_to_the_requests_of_its_own_web_server(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient

    from tidings.api.app import create_app
    from tidings.config import Settings
    from tidings.services.context import Context
    from tidings.store.db import make_engine, migrate

    url = f"sqlite:///{tmp_path / 'tidings.db'}"
    migrate(url)
    settings = Settings(_env_file=None, database_url=url, secret_key="test-secret-key",  # type: ignore[call-arg]
                        smtp_url=f"file://{tmp_path / 'outbox'}", poll_interval=0.05)
    ctx = Context(settings=settings, engine=make_engine(url))
    app = create_app(ctx, run_worker=True)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert app.state.worker.foreground is app.state.foreground
    ctx.close()
