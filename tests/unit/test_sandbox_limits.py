"""Sandbox rate limiting, faults and clock, without a server."""

from __future__ import annotations

import pytest

from connector.sandbox.clock import Clock, fmt_datetime, parse_datetime
from connector.sandbox.faults import Faults
from connector.sandbox.limits import Limits


def test_sliding_window_never_admits_more_than_the_limit_per_second() -> None:
    limits = Limits(rate_limit=3)
    admitted = []
    for tick in range(100):
        now = tick * 0.13
        if limits.admit("c", now) is None:
            admitted.append(now)
    for i, start in enumerate(admitted):
        assert sum(1 for t in admitted[i:] if t < start + 1.0) <= 3
    assert len(admitted) >= 3 * 12


def test_limits_are_per_client_and_quota_counts_per_minute() -> None:
    limits = Limits(rate_limit=None, per_minute=2)
    assert [limits.admit("a", 0.0), limits.admit("a", 1.0), limits.admit("a", 2.0)] == [
        None,
        None,
        "minute",
    ]
    assert limits.admit("b", 2.0) is None
    assert limits.admit("a", 60.5) is None


def test_scripts_match_prefixes_in_order_then_run_out() -> None:
    faults = Faults()
    faults.script("500", 2, path_prefix="/smtp")
    faults.script("drop")
    taken = faults.take("/smtp/emails")
    assert taken is not None
    assert taken.kind == "500"
    other = faults.take("/addressbooks")
    assert other is not None
    assert other.kind == "drop"
    assert faults.take("/addressbooks") is None
    assert faults.pending == 1
    assert faults.take("/smtp/x") is not None
    assert faults.take("/smtp/x") is None


def test_fault_arguments_are_checked() -> None:
    faults = Faults()
    with pytest.raises(ValueError):
        faults.script("404")
    with pytest.raises(ValueError):
        faults.script("500", 0)
    with pytest.raises(ValueError):
        faults.set_rate("hang", -0.1)


def test_frozen_clock_moves_only_when_advanced() -> None:
    seen = []
    clock = Clock(start=1000.0, frozen=True)
    clock.on_advance(lambda: seen.append(clock.now()))
    assert clock.now() == 1000.0
    clock.advance(5)
    assert clock.now() == 1005.0
    assert seen == [1005.0]
    with pytest.raises(ValueError):
        clock.advance(-1)


def test_date_formats_round_trip() -> None:
    assert fmt_datetime(0) == "1970-01-01 00:00:00"
    assert parse_datetime("1970-01-01 00:01:00") == 60.0
    assert parse_datetime("1970-01-02") == 86400.0
    assert parse_datetime("1970-01-01T00:00:00+01:00") == -3600.0
    assert parse_datetime("soon") is None
