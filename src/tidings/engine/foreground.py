"""Requests first: a worker that shares its process with the web server gives
way to the requests being answered.

``tidings serve`` runs the API, the web UI and a sending worker in one process,
and Python runs one thread at a time: while the worker renders a mailing at
full speed, a request waits for its turn at every step (an API answer that
takes 13 ms alone took 84 ms at the median while a mailing sent). The web
server counts the requests it is answering (:meth:`Foreground.enter` and
:meth:`Foreground.leave`); the worker's render thread calls
:meth:`Foreground.give_way` between two messages and, while any request is
being answered, sleeps in short steps, which lets the request's threads run.

Only the requests of people at work (the API and the web UI) count, not the
recipients' (opens, clicks, unsubscribe pages; see
:class:`tidings.api.app.CountRequests`), and it never gives more than
``share`` (80%) of each second away: a flood of requests slows the rendering
down to a fifth, never stops it. Only the render thread gives way; the
connections and the thread that writes their records carry on (the messages
rendered already go out), so sending slows only once those run out.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

#: How long the worker sleeps at a time while a request is answered, seconds.
STEP = 0.0005
#: The worker gives at most this share of each period (seconds) away.
SHARE, PERIOD = 0.8, 1.0  # 0.5 left the API's p99 at 142 ms, 0.8 at 110 (bench/load.py)


class Foreground:
    """The requests being answered in the worker's process, and the worker's
    way of giving them its turn."""

    def __init__(self, *, share: float = SHARE, period: float = PERIOD,
                 monotonic: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.share, self.period = share, period
        self.monotonic, self.sleep = monotonic, sleep
        self._lock = threading.Lock()
        self.active = 0  # changed under the lock; read without it
        self._since = float("-inf")  # start of the current period
        self._given = 0.0  # seconds given away in it

    def enter(self) -> None:
        with self._lock:
            self.active += 1

    def leave(self) -> None:
        with self._lock:
            self.active -= 1

    def give_way(self) -> float:
        """While a request is being answered, wait (within the period's share);
        returns the seconds waited."""
        if not self.active:
            return 0.0
        start = now = self.monotonic()
        if now - self._since >= self.period:
            self._since, self._given = now, 0.0
        allowed = self.share * self.period - self._given
        while self.active and now - start < allowed:
            self.sleep(STEP)
            now = self.monotonic()
        waited = now - start
        self._given += waited
        return waited
