"""The one Retry-After reading, shared by the SendPulse and Mailium clients and the webhook
action: delay-seconds or an HTTP date, capped at a day, anything else unreadable."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

import pytest

from connector.http_client.api_retry import MAX_RETRY_AFTER, parse_retry_after
from connector.leases import default_worker_id
from connector.wall_clock import utc_now

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        ("120", 120.0),
        (" 7 ", 7.0),
        ("0", 0.0),
        ("0.5", 0.5),  # the sandbox's faults send fractions
        ("Sun, 01 Mar 2026 13:00:00 GMT", 3600.0),
        ("Sun, 01 Mar 2026 12:00:30 +0000", 30.0),
        ("Sun, 01 Mar 2026 11:00:00 GMT", 0.0),  # already past: go now
        ("999999999", MAX_RETRY_AFTER),
        ("9" * 400, MAX_RETRY_AFTER),  # would be inf as a float
        ("Mon, 01 Mar 2027 12:00:00 GMT", MAX_RETRY_AFTER),
    ],
)
def test_readable_values(header: str, seconds: float) -> None:
    assert parse_retry_after(header, now=NOW) == seconds


@pytest.mark.parametrize(
    "header",
    [None, "", "   ", "-5", "+5", "1e3", "inf", "nan", "soon", "5 seconds", "Sun, 99 Foo"],
)
def test_unreadable_values_leave_the_callers_backoff(header: str | None) -> None:
    assert parse_retry_after(header, now=NOW) is None


def test_a_date_is_read_against_the_wall_clock_by_default() -> None:
    later = (utc_now() + timedelta(minutes=10)).strftime("%a, %d %b %Y %H:%M:%S GMT")
    seconds = parse_retry_after(later)
    assert seconds is not None and 540 < seconds <= 600


def test_worker_ids_are_unique_per_call_and_name_the_process() -> None:
    first, second = default_worker_id(), default_worker_id()
    assert first != second
    assert first.rsplit("-", 2)[1] == str(os.getpid())
