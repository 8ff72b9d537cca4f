"""The throttling rules: token buckets per key, and the account lockout's schedule."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tidings.domain.throttling import LOCK_AFTER, Buckets, Rate, in_words, lockout


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_bucket_allows_its_burst_then_one_request_per_refill() -> None:
    clock = Clock()
    buckets = Buckets(Rate(capacity=3, per_second=0.5), clock=clock)

    assert [buckets.take("a") for _ in range(3)] == [0, 0, 0]
    assert buckets.take("a") == pytest.approx(2.0)  # one token takes 2 s to come back
    assert buckets.take("b") == 0  # another address has its own bucket
    clock.now += 2
    assert buckets.take("a") == 0
    assert buckets.take("a") == pytest.approx(2.0)
    clock.now += 3600
    assert [buckets.take("a") for _ in range(4)][-1] > 0  # refilled to the burst, not beyond


def test_a_failure_is_charged_after_the_fact_and_wait_takes_nothing() -> None:
    clock = Clock()
    buckets = Buckets(Rate(capacity=2, per_second=1 / 30), clock=clock)

    assert buckets.wait("a") == 0 and buckets.wait("a") == 0  # looking costs nothing
    buckets.spend("a")
    buckets.spend("a")
    buckets.spend("a")  # may go below zero: every failure counts
    assert buckets.wait("a") == pytest.approx(60.0)
    clock.now += 60
    assert buckets.wait("a") == 0


def test_the_number_of_buckets_kept_is_bounded_and_full_ones_go_first() -> None:
    clock = Clock()
    buckets = Buckets(Rate(capacity=2, per_second=1), max_keys=100, clock=clock)
    buckets.spend("flooder", 1000)
    for i in range(500):  # one request each, a second apart: their buckets are full again
        buckets.take(f"visitor-{i}")
        clock.now += 1
    assert len(buckets) <= 100
    assert buckets.take("flooder") > 0  # still empty: remembered while full ones were dropped


@pytest.mark.parametrize(("failures", "locked"), [
    (1, None), (4, None), (LOCK_AFTER, timedelta(minutes=15)), (6, None), (9, None),
    (10, timedelta(minutes=30)), (15, timedelta(hours=1)), (20, timedelta(hours=2)),
    (50, timedelta(hours=24)), (5000, timedelta(hours=24)),
])
def test_an_account_is_locked_after_every_fifth_failure_for_longer_each_time(
        failures: int, locked: timedelta | None) -> None:
    assert lockout(failures) == locked


@pytest.mark.parametrize(("seconds", "words"), [
    (1, "1 minute"), (60, "1 minute"), (61, "2 minutes"), (12 * 60 - 5, "12 minutes"),
    (119 * 60, "119 minutes"), (3 * 3600, "3 hours"),
])
def test_a_wait_is_said_in_whole_minutes_or_hours_rounded_up(seconds: float, words: str) -> None:
    assert in_words(seconds) == words
