"""Link checks: does each link of a message answer? Asked from the server.

A check is ``HEAD`` and, when that is refused with a 4xx/5xx (many servers
refuse ``HEAD``), ``GET``; redirects are followed (at most 5); an answer below
400 counts as working. Each request has :data:`TIMEOUT` seconds. Checks run
concurrently on a small pool of threads (:data:`WORKERS`), never in the
request that asks: :meth:`LinkChecker.results` starts what is not known yet
and returns at once with what is, and :meth:`LinkChecker.wait` waits for a
bounded time. A result is kept for :data:`KEEP` seconds, so opening the
confirmation again does not ask again.

Only the status is kept, never the body. The check asks whatever address the
template links to, so it can reach the servers Tidings can: it is for the
people who write the templates (signed-in managers and API tokens).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_for
from dataclasses import dataclass

import httpx

__all__ = ["KEEP", "TIMEOUT", "LinkChecker", "LinkResult", "checker"]

TIMEOUT = 5.0
KEEP = 120.0
WORKERS = 8
MAX_REDIRECTS = 5
USER_AGENT = "Tidings link check"


@dataclass(frozen=True, kw_only=True)
class LinkResult:
    """``ok`` when it answered below 400; ``status`` the last HTTP status (None
    when nothing answered) and ``problem`` in the manager's words."""

    url: str
    ok: bool
    status: int | None
    problem: str | None = None


def check_link(client: httpx.Client, url: str) -> LinkResult:
    """Ask ``url`` once (``HEAD``, then ``GET`` if refused)."""
    try:
        response = client.head(url)
        if response.status_code >= 400:
            with client.stream("GET", url) as streamed:
                response = streamed
    except httpx.TimeoutException:
        return LinkResult(url=url, ok=False, status=None,
                          problem=f"no answer within {TIMEOUT:g} seconds")
    except httpx.TooManyRedirects:
        return LinkResult(url=url, ok=False, status=None, problem="it redirects in a loop")
    except httpx.HTTPError as exc:
        reason = "could not connect" if isinstance(exc, httpx.ConnectError) else str(exc) or "failed"
        return LinkResult(url=url, ok=False, status=None, problem=reason)
    status = response.status_code
    if status >= 400:
        return LinkResult(url=url, ok=False, status=status,
                          problem=f"it answers {status} {response.reason_phrase}".strip())
    return LinkResult(url=url, ok=True, status=status)


class LinkChecker:
    """Concurrent, cached link checks (see the module docstring). Thread-safe."""

    def __init__(self, *, timeout: float = TIMEOUT, keep: float = KEEP, workers: int = WORKERS) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._done: dict[str, tuple[float, LinkResult]] = {}
        self._running: dict[str, Future[LinkResult]] = {}
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="link-check")
        self._client = httpx.Client(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 3.0)), follow_redirects=True,
            max_redirects=MAX_REDIRECTS, headers={"User-Agent": USER_AGENT}, verify=True)

    def _run(self, url: str) -> LinkResult:
        try:
            result = check_link(self._client, url)
        except Exception as exc:  # a bug must not leave the link "checking" for ever
            result = LinkResult(url=url, ok=False, status=None, problem=f"check failed: {exc}")
        with self._lock:
            self._done[url] = (time.monotonic(), result)
            self._running.pop(url, None)
        return result

    def results(self, urls: Iterable[str]) -> dict[str, LinkResult | None]:
        """What is known of each URL now (None: being checked); starts the
        checks that are neither known nor running. Never waits."""
        now = time.monotonic()
        found: dict[str, LinkResult | None] = {}
        with self._lock:
            for url in urls:
                done = self._done.get(url)
                if done is not None and now - done[0] < self.keep:
                    found[url] = done[1]
                    continue
                if url not in self._running:
                    self._running[url] = self._pool.submit(self._run, url)
                found[url] = None
        return found

    def wait(self, urls: Iterable[str], *, timeout: float) -> dict[str, LinkResult | None]:
        """Like :meth:`results`, waiting at most ``timeout`` seconds for the checks."""
        urls = list(urls)
        self.results(urls)
        with self._lock:
            running = [self._running[u] for u in urls if u in self._running]
        if running:
            wait_for(running, timeout=timeout)
        with self._lock:
            return {u: self._done[u][1] if u in self._done else None for u in urls}

    def forget(self) -> None:
        """Drop every kept result (tests change what a server answers)."""
        with self._lock:
            self._done.clear()


_checker: LinkChecker | None = None
_checker_lock = threading.Lock()


def checker() -> LinkChecker:
    """The process's link checker, made on first use."""
    global _checker
    with _checker_lock:
        if _checker is None:
            _checker = LinkChecker()
        return _checker
