"""The dispatcher's outcome decisions, judged without a database: retry, dead, held, done."""

# ruff: noqa: S311 - seeded generators make the jitter reproducible

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from connector import delivery_outcomes as outcomes
from connector.delivery_outcomes import DETAIL_LIMIT, Attempt
from connector.delivery_retry import JITTER
from connector.errors import ConfigError, FatalError, NeedsReauth, RetriableError
from connector.plugins import ActionResult

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SCHEDULE = [timedelta(seconds=10), timedelta(seconds=100)]


def attempt(number: int, offset: int = 0) -> Attempt:
    return Attempt(number=number, schedule_offset=offset, schedule=SCHEDULE, budget=110.0)


class HttpFailure(RetriableError):
    def __init__(self, message: str, status: int, detail: str | None = None) -> None:
        super().__init__(message)
        self.status_code = status
        self.detail = detail


def test_a_result_is_delivered_with_its_summary_and_status() -> None:
    outcome = outcomes.delivered(ActionResult("posted", status_code=204, detail="ok"))
    assert (outcome.state, outcome.summary, outcome.status_code) == ("delivered", "posted", 204)
    assert outcome.detail == "ok"
    assert outcome.error is None and outcome.next_attempt_at is None


def test_a_retriable_failure_waits_the_schedules_step_within_jitter() -> None:
    outcome = outcomes.failed(attempt(1), RetriableError("busy"), NOW, random.Random(1))
    assert outcome.state == "pending" and outcome.error == "busy"
    assert outcome.next_attempt_at is not None
    wait = (outcome.next_attempt_at - NOW).total_seconds()
    assert 10 * (1 - JITTER) <= wait <= 10 * (1 + JITTER)
    second = outcomes.failed(attempt(2), RetriableError("busy"), NOW, random.Random(1))
    assert second.next_attempt_at is not None
    assert (second.next_attempt_at - NOW).total_seconds() >= 100 * (1 - JITTER)


def test_retry_after_wins_over_a_shorter_step() -> None:
    exc = RetriableError("slow down", retry_after=3600)
    outcome = outcomes.failed(attempt(1), exc, NOW, random.Random(2))
    assert outcome.next_attempt_at == NOW + timedelta(hours=1)


def test_a_used_up_schedule_is_dead_and_says_how_many_attempts() -> None:
    outcome = outcomes.failed(attempt(3), RetriableError("busy"), NOW, random.Random(1))
    assert outcome.state == "dead"
    assert outcome.error == "gave up after 3 attempts: busy"
    assert outcome.next_attempt_at is None


def test_a_replay_starts_the_schedule_again_from_its_offset() -> None:
    # Attempt 5 of a delivery replayed after attempt 3 is the schedule's second step.
    outcome = outcomes.failed(attempt(5, offset=3), RetriableError("busy"), NOW, random.Random(1))
    assert outcome.state == "pending" and outcome.next_attempt_at is not None
    assert (outcome.next_attempt_at - NOW).total_seconds() >= 100 * (1 - JITTER)
    assert outcomes.failed(
        attempt(6, offset=3), RetriableError("x"), NOW, random.Random()
    ).state == ("dead")


def test_an_offset_past_the_attempt_still_counts_one_attempt_made() -> None:
    outcome = outcomes.failed(attempt(1, offset=4), RetriableError("busy"), NOW, random.Random(1))
    assert outcome.next_attempt_at is not None
    assert (outcome.next_attempt_at - NOW).total_seconds() <= 10 * (1 + JITTER)


def test_a_fatal_failure_is_dead_at_once_whatever_the_schedule() -> None:
    outcome = outcomes.failed(attempt(1), FatalError("bad request"), NOW, random.Random())
    assert (outcome.state, outcome.error, outcome.next_attempt_at) == ("dead", "bad request", None)


def test_refused_credentials_hold_the_delivery_due_now() -> None:
    outcome = outcomes.failed(attempt(7), NeedsReauth("token refused"), NOW, random.Random())
    assert outcome.state == "pending"
    assert outcome.next_attempt_at == NOW
    assert outcome.error == "held until the connection is active again: token refused"
    assert outcome.detail == "token refused"


def test_a_timeout_names_the_budget_and_retries() -> None:
    outcome = outcomes.failed(attempt(1), TimeoutError(), NOW, random.Random(1))
    assert outcome.state == "pending"
    assert outcome.error == "the action took longer than 110s"


@pytest.mark.parametrize("exc", [KeyError("url"), ConfigError("no such thing")])
def test_a_crash_is_retried_and_named_by_its_type(exc: Exception) -> None:
    outcome = outcomes.failed(attempt(1), exc, NOW, random.Random(1))
    assert outcome.state == "pending"
    assert outcome.error is not None and outcome.error.startswith(f"{type(exc).__name__}: ")
    assert not isinstance(exc, outcomes.EXPECTED)


def test_the_far_sides_status_and_detail_are_kept() -> None:
    exc = HttpFailure("HTTP 503", 503, detail="maintenance")
    outcome = outcomes.failed(attempt(1), exc, NOW, random.Random(1))
    assert (outcome.status_code, outcome.detail) == (503, "maintenance")
    dead = outcomes.failed(attempt(9), exc, NOW, random.Random(1))
    assert (dead.state, dead.status_code, dead.detail) == ("dead", 503, "maintenance")


def test_a_status_that_is_no_number_is_ignored() -> None:
    exc = FatalError("odd")
    exc.status = "503"  # type: ignore[attr-defined]
    assert outcomes.failed(attempt(1), exc, NOW, random.Random()).status_code is None


def test_long_errors_are_cut_to_the_limit() -> None:
    outcome = outcomes.failed(attempt(1), FatalError("x" * 2000), NOW, random.Random())
    assert outcome.error is not None and len(outcome.error) == DETAIL_LIMIT
    assert outcome.error.endswith("…")
    assert outcome.detail is not None and len(outcome.detail) == DETAIL_LIMIT
