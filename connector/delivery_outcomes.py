"""How one delivery attempt ends: delivered, retried later, held, or dead.

Pure decisions with no database and no clock of their own: the dispatcher passes in the
time, the flow's retry schedule and its random source, and writes what comes back.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from connector.delivery_retry import next_delay
from connector.errors import FatalError, NeedsReauth, RetriableError
from connector.logging import scrub
from connector.plugins import ActionResult

DETAIL_LIMIT = 500

State = Literal["delivered", "pending", "dead"]
# The failures an action may raise on purpose; anything else is a bug in the action.
EXPECTED = (FatalError, RetriableError, TimeoutError)


@dataclass(frozen=True)
class Outcome:
    """How one attempt ended, as written to the database and the log."""

    state: State
    summary: str | None
    error: str | None
    status_code: int | None
    detail: str | None
    next_attempt_at: datetime | None


@dataclass(frozen=True)
class Attempt:
    """What the decision needs to know about the attempt that just ended."""

    # The attempt's number (1 for the first), and how many attempts came before the
    # current retry schedule started (a replay starts the schedule again).
    number: int
    schedule_offset: int
    schedule: Sequence[timedelta]
    # How long the action was allowed to run, in seconds.
    budget: float


def truncate(text: str | None) -> str | None:
    if text is None:
        return None
    text = scrub(text)
    return text if len(text) <= DETAIL_LIMIT else text[: DETAIL_LIMIT - 1] + "…"


def status_of(exc: BaseException | None) -> int | None:
    """The far side's HTTP status behind a failure, where the error carries one."""
    for name in ("status_code", "status"):
        value = getattr(exc, name, None)
        if isinstance(value, int):
            return value
    return None


def _detail(exc: BaseException | None, error: str) -> str | None:
    return truncate(getattr(exc, "detail", None) or error)


def delivered(result: ActionResult) -> Outcome:
    return Outcome(
        state="delivered",
        summary=truncate(result.summary),
        error=None,
        status_code=result.status_code,
        detail=truncate(result.detail),
        next_attempt_at=None,
    )


def held(error: str, exc: BaseException, now: datetime) -> Outcome:
    # Due at once, but not claimed while the connection needs reauth (dispatch_claim):
    # new credentials and a restart or reload deliver it, whatever its retry schedule.
    return Outcome(
        state="pending",
        summary=None,
        error=truncate(f"held until the connection is active again: {error}"),
        status_code=status_of(exc),
        detail=_detail(exc, error),
        next_attempt_at=now,
    )


def dead(error: str, exc: BaseException | None) -> Outcome:
    return Outcome(
        state="dead",
        summary=None,
        error=truncate(error),
        status_code=status_of(exc),
        detail=_detail(exc, error),
        next_attempt_at=None,
    )


def retry(
    attempt: Attempt,
    error: str,
    exc: BaseException,
    retry_after: float | None,
    now: datetime,
    rng: random.Random,
) -> Outcome:
    """Pending again after the schedule's next wait, or dead once the schedule is used up."""
    made = max(1, attempt.number - attempt.schedule_offset)
    delay = next_delay(attempt.schedule, made, retry_after=retry_after, rng=rng)
    if delay is None:
        return dead(f"gave up after {attempt.number} attempts: {error}", exc)
    return Outcome(
        state="pending",
        summary=None,
        error=truncate(error),
        status_code=status_of(exc),
        detail=_detail(exc, error),
        next_attempt_at=now + delay,
    )


def failed(attempt: Attempt, exc: BaseException, now: datetime, rng: random.Random) -> Outcome:
    """The outcome of an attempt whose action raised ``exc``."""
    if isinstance(exc, NeedsReauth):
        return held(str(exc), exc, now)
    if isinstance(exc, FatalError):
        return dead(str(exc), exc)
    if isinstance(exc, RetriableError):
        return retry(attempt, str(exc), exc, exc.retry_after, now, rng)
    if isinstance(exc, TimeoutError):
        message = f"the action took longer than {attempt.budget:g}s"
        return retry(attempt, message, exc, None, now, rng)
    # A bug in an action must not lose the event: try again later.
    return retry(attempt, f"{type(exc).__name__}: {exc}", exc, None, now, rng)
