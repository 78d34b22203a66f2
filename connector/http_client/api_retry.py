"""Retry timing: exponential backoff with full jitter, bounded in attempts and total time,
and the one reading of a ``Retry-After`` header."""

from __future__ import annotations

import random as _random
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from connector.wall_clock import utc_now

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


# A server's Retry-After is honoured up to this: one bad header must not park work for days.
MAX_RETRY_AFTER = 24 * 3600.0
# RFC 9110 delay-seconds is digits only; a decimal part is tolerated because the wait is
# still plain. Signs, exponents, "inf" and "nan" are not a delay and count as unreadable.
_DELAY = re.compile(r"[0-9]+(?:\.[0-9]+)?")


def parse_retry_after(value: str | None, *, now: datetime | None = None) -> float | None:
    """``Retry-After`` as seconds, from delay-seconds or an HTTP date, capped at a day.

    None when absent or unreadable (the caller's own backoff applies); 0.0 for a date already
    past. Used for SendPulse, Mailium and webhook receivers alike.
    """
    if not value:
        return None
    text = value.strip()
    if _DELAY.fullmatch(text):
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or utc_now())).total_seconds()
    return min(max(0.0, seconds), MAX_RETRY_AFTER)
