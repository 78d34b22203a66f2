"""When to try a failed delivery again: a Svix-like schedule with jitter, then ``dead``.

Attempt 1 runs as soon as the event is stored. After attempt ``n`` fails, the next one waits
``schedule[n - 1]`` (jittered); once the schedule is used up, the delivery is dead. With the
default schedule that is 8 attempts over about 27.6 hours.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from datetime import timedelta

from connector.config import DEFAULT_RETRY_SCHEDULE

DEFAULT_SCHEDULE: tuple[timedelta, ...] = tuple(
    timedelta(seconds=s) for s in DEFAULT_RETRY_SCHEDULE
)
JITTER = 0.1
# A receiver's Retry-After is honoured, but not beyond this: one bad header must not park
# a delivery for a year.
MAX_RETRY_AFTER = timedelta(hours=24)


def next_delay(
    schedule: Sequence[timedelta],
    attempts_made: int,
    *,
    retry_after: float | None = None,
    rng: random.Random | None = None,
) -> timedelta | None:
    """The wait before the next attempt after ``attempts_made`` failures; None = give up."""
    if attempts_made < 1:
        raise ValueError("attempts_made counts attempts already made, starting at 1")
    index = attempts_made - 1
    if index >= len(schedule):
        return None
    base = schedule[index]
    factor = 1.0 + (rng or random).uniform(-JITTER, JITTER)
    delay = timedelta(seconds=base.total_seconds() * factor)
    if retry_after is not None and retry_after > 0:
        wanted = min(timedelta(seconds=retry_after), MAX_RETRY_AFTER)
        delay = max(delay, wanted)
    return delay


def total_window(schedule: Sequence[timedelta]) -> timedelta:
    """How long a delivery keeps being retried before it is dead (without jitter)."""
    return sum(schedule, timedelta())
