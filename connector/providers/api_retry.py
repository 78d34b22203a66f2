"""Retry timing: exponential backoff with full jitter, bounded in attempts and total time."""

from __future__ import annotations

import random as _random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long one request is retried before its error goes to the caller."""

    attempts: int = 5
    base: float = 0.5
    cap: float = 30.0
    # Past this, the error goes up and the delivery's own schedule takes over.
    budget: float = 120.0
    random: Callable[[], float] = field(default=_random.random, compare=False)
    monotonic: Callable[[], float] = field(default=time.monotonic, compare=False)

    def backoff(self, attempt: int) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**(attempt-1))]."""
        ceiling = min(self.cap, self.base * 2.0 ** max(attempt - 1, 0))
        return float(self.random()) * ceiling

    def delay(self, attempt: int, retry_after: float | None) -> float:
        wait = self.backoff(attempt)
        if retry_after is not None:
            # The server's word is a floor, never shortened by the jitter.
            wait = max(wait, retry_after)
        return wait


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds (delta-seconds or an HTTP date); None if absent or unreadable."""
    if not value:
        return None
    text = value.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - (now or datetime.now(UTC))).total_seconds()
    if seconds != seconds or seconds < 0:  # NaN or in the past
        return 0.0
    return min(seconds, 24 * 3600.0)
