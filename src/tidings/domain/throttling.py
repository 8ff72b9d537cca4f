"""Throttling rules, pure: token buckets per client address, and the lockout of
an account after failed sign-ins.

- :class:`Buckets`: one token bucket per key (a client's address). A request
  takes a token; a bucket refills at ``Rate.per_second`` up to
  ``Rate.capacity`` (the burst it allows). Memory is bounded: past
  ``max_keys`` buckets, full ones (which are the same as new ones) are
  forgotten first, then the longest unused.
- :func:`lockout`: after :data:`LOCK_AFTER` failed sign-ins in a row an
  account is locked for :data:`FIRST_LOCK`, after the next
  :data:`LOCK_AFTER` for twice as long, and so on up to :data:`LONGEST_LOCK`.
  Failures older than :data:`FORGET_AFTER` are forgotten.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

LOCK_AFTER = 5
FIRST_LOCK = timedelta(minutes=15)
LONGEST_LOCK = timedelta(hours=24)
FORGET_AFTER = timedelta(hours=24)


def lockout(failures: int) -> timedelta | None:
    """How long an account is locked after its ``failures``-th failed sign-in in a
    row: ``None`` (not locked) unless ``failures`` is a multiple of
    :data:`LOCK_AFTER`; 15 minutes at 5, 30 at 10, 1 hour at 15, ... at most 24 hours."""
    if failures < LOCK_AFTER or failures % LOCK_AFTER:
        return None
    doublings = min(failures // LOCK_AFTER - 1, 16)
    return min(FIRST_LOCK * 2**doublings, LONGEST_LOCK)


def in_words(seconds: float) -> str:
    """A wait as a person says it, rounded up: ``1 minute``, ``12 minutes``, ``2 hours``."""
    minutes = max(1, math.ceil(seconds / 60))
    if minutes < 120:
        return f"{minutes} minute{'s' if minutes != 1 else ''}"
    hours = math.ceil(minutes / 60)
    return f"{hours} hours"


@dataclass(frozen=True, kw_only=True)
class Rate:
    """A token bucket's shape: ``capacity`` tokens at most (the burst), refilled
    at ``per_second``."""

    capacity: float
    per_second: float

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.per_second <= 0:
            raise ValueError("a rate needs a capacity of 1 or more and a positive refill")


class Buckets:
    """Token buckets by key, all of one :class:`Rate`; safe to share between threads."""

    def __init__(self, rate: Rate, *, max_keys: int = 50_000,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.max_keys = max_keys
        #: Seconds, monotonic; tests may replace it to stop time.
        self.clock = clock
        self._lock = threading.Lock()
        # key -> (tokens, when they were counted); least recently used first
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()

    def _level(self, key: str, now: float) -> float:
        tokens, then = self._buckets.get(key, (self.rate.capacity, now))
        return min(self.rate.capacity, tokens + (now - then) * self.rate.per_second)

    def wait(self, key: str, cost: float = 1.0) -> float:
        """Seconds until ``key`` has ``cost`` tokens (0: it has them now); takes nothing."""
        with self._lock:
            level = self._level(key, self.clock())
        return max(0.0, (cost - level) / self.rate.per_second)

    def take(self, key: str, cost: float = 1.0) -> float:
        """Take ``cost`` tokens from ``key``'s bucket and return 0, or, when it has
        fewer, take nothing and return the seconds until it will have them."""
        with self._lock:
            now = self.clock()
            level = self._level(key, now)
            if level < cost:
                return (cost - level) / self.rate.per_second
            self._buckets[key] = (level - cost, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self.max_keys:
                self._forget(now)
            return 0.0

    def spend(self, key: str, cost: float = 1.0) -> None:
        """Take ``cost`` tokens even if that leaves the bucket below zero (a cost
        known only after the request, such as a failed sign-in)."""
        with self._lock:
            now = self.clock()
            self._buckets[key] = (self._level(key, now) - cost, now)
            self._buckets.move_to_end(key)
            if len(self._buckets) > self.max_keys:
                self._forget(now)

    def _forget(self, now: float) -> None:
        # Down to 90% at once, so that the scan runs once per many new keys.
        keep = max(1, self.max_keys * 9 // 10)
        full = [k for k in self._buckets if self._level(k, now) >= self.rate.capacity]
        for key in full:
            del self._buckets[key]
        while len(self._buckets) > keep:
            self._buckets.popitem(last=False)

    def __len__(self) -> int:
        return len(self._buckets)
