"""The retry schedule: Svix-like steps, bounded jitter, Retry-After honoured, then dead."""

# ruff: noqa: S311 - seeded generators make the jitter reproducible

from __future__ import annotations

import random
from datetime import timedelta

import pytest

from connector.delivery_retry import (
    DEFAULT_SCHEDULE,
    JITTER,
    MAX_RETRY_AFTER,
    next_delay,
    total_window,
)

EXPECTED = [5, 300, 1800, 7200, 18000, 36000, 36000]


def test_default_schedule_is_svix_like() -> None:
    assert [d.total_seconds() for d in DEFAULT_SCHEDULE] == EXPECTED
    assert total_window(DEFAULT_SCHEDULE) == timedelta(hours=27, minutes=35, seconds=5)


def test_each_step_is_within_jitter_and_then_gives_up() -> None:
    rng = random.Random(7)
    for attempt, seconds in enumerate(EXPECTED, start=1):
        for _ in range(200):
            delay = next_delay(DEFAULT_SCHEDULE, attempt, rng=rng)
            assert delay is not None
            assert seconds * (1 - JITTER) <= delay.total_seconds() <= seconds * (1 + JITTER)
    assert next_delay(DEFAULT_SCHEDULE, len(EXPECTED) + 1, rng=rng) is None


def test_jitter_actually_varies() -> None:
    rng = random.Random(1)
    delays = {next_delay(DEFAULT_SCHEDULE, 3, rng=rng) for _ in range(20)}
    assert len(delays) > 10


def test_retry_after_wins_when_longer_and_is_capped() -> None:
    rng = random.Random(3)
    delay = next_delay(DEFAULT_SCHEDULE, 1, retry_after=60, rng=rng)
    assert delay == timedelta(seconds=60)
    short = next_delay(DEFAULT_SCHEDULE, 2, retry_after=1, rng=rng)
    assert short is not None and short.total_seconds() >= 300 * (1 - JITTER)
    huge = next_delay(DEFAULT_SCHEDULE, 1, retry_after=10**9, rng=rng)
    assert huge == MAX_RETRY_AFTER


def test_custom_and_empty_schedules() -> None:
    schedule = [timedelta(seconds=1), timedelta(seconds=2)]
    assert next_delay(schedule, 3) is None
    assert next_delay([], 1) is None
    with pytest.raises(ValueError, match="starting at 1"):
        next_delay(schedule, 0)
