"""Phases: N flows spread evenly over their interval, the same in every process and run."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest

from connector.phases import (
    EPOCH,
    FIRST_POLL_WITHIN,
    first_poll_delay,
    name_hash,
    next_slot,
    phases,
    spread,
)

FIVE_MINUTES = timedelta(minutes=5)
NAMES = [f"flow-{n:05d}" for n in range(5000)]


def test_5000_phases_fall_evenly_into_10_bins() -> None:
    found = phases((name, FIVE_MINUTES) for name in NAMES)
    assert len(found) == 5000
    bins = Counter(int(phase / 300 * 10) for phase in found.values())
    mean = 5000 / 10
    assert sorted(bins) == list(range(10))
    assert all(0.8 * mean <= count <= 1.2 * mean for count in bins.values()), bins


def test_per_install_instances_spread_too() -> None:
    names = [f"new-subscribers@store-{user}" for user in range(1000, 6000)]
    found = phases((name, FIVE_MINUTES) for name in names)
    per_second = Counter(int(phase) for phase in found.values())
    assert max(per_second.values()) <= 17
    assert len(per_second) == 300


def test_phases_are_identical_across_restarts_and_input_order() -> None:
    first = phases((name, FIVE_MINUTES) for name in NAMES)
    shuffled = NAMES[1::2] + NAMES[::2][::-1]
    again = phases((name, FIVE_MINUTES) for name in shuffled)
    assert again == first
    # Fixed values: a hash that changed between processes (Python's hash()) or releases
    # would move every flow after a restart or an upgrade.
    assert name_hash("welcome-new-subscribers") == 10283427208801302090
    assert name_hash("new-subscribers@store-777") == 7868143814478231011
    three = ["welcome-new-subscribers", "flow-00000", "new-subscribers@store-777"]
    assert phases((name, FIVE_MINUTES) for name in three) == {
        "flow-00000": 0.0,
        "new-subscribers@store-777": 100.0,
        "welcome-new-subscribers": 200.0,
    }


def test_adding_or_removing_a_flow_moves_the_others_by_less_than_every_over_n() -> None:
    before = phases((name, FIVE_MINUTES) for name in NAMES)
    added = phases((name, FIVE_MINUTES) for name in [*NAMES, "one-more"])
    removed = phases((name, FIVE_MINUTES) for name in NAMES[1:])
    limit = 300 / 5000
    assert max(abs(added[name] - before[name]) for name in NAMES) < limit
    assert max(abs(removed[name] - before[name]) for name in NAMES[1:]) < limit


def test_each_interval_is_spread_on_its_own() -> None:
    flows = [(f"fast-{n}", timedelta(seconds=10)) for n in range(50)]
    flows += [(f"slow-{n}", timedelta(hours=1)) for n in range(50)]
    found = phases(flows)
    assert sorted(found[f"fast-{n}"] for n in range(50)) == pytest.approx(
        [n * 10 / 50 for n in range(50)]
    )
    assert sorted(found[f"slow-{n}"] for n in range(50)) == pytest.approx(
        [n * 3600 / 50 for n in range(50)]
    )


def test_phases_of_nothing_and_of_one_flow() -> None:
    assert phases([]) == {}
    assert phases([("only", FIVE_MINUTES)]) == {"only": 0.0}


@pytest.mark.parametrize(
    "after",
    [
        datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC),
        datetime(2026, 12, 1, 14, 0, 7, 123456, tzinfo=UTC),
        datetime(2026, 12, 1, 14, 4, 59, 999999, tzinfo=UTC),
        EPOCH,
    ],
)
@pytest.mark.parametrize("phase", [0.0, 7.123456, 150.5, 299.999])
def test_next_slot_is_the_first_instant_at_the_phase(after: datetime, phase: float) -> None:
    slot = next_slot(phase, 300.0, after)
    assert after <= slot < after + timedelta(seconds=300)
    into_interval = (slot - EPOCH).total_seconds() % 300
    # Compared around the circle: 299.9999995 and 0.0000005 are a microsecond apart.
    assert abs((into_interval - phase + 150) % 300 - 150) < 1e-5


def test_a_slot_exactly_now_is_now() -> None:
    now = datetime(2026, 12, 1, 14, 0, 0, tzinfo=UTC)  # a multiple of 5 minutes since 1970
    assert next_slot(0.0, 300.0, now) == now
    assert next_slot(60.0, 300.0, now) == now + timedelta(minutes=1)


@pytest.mark.parametrize(
    ("every", "limit"), [(300.0, FIRST_POLL_WITHIN), (10.0, 10.0), (3600.0, FIRST_POLL_WITHIN)]
)
def test_a_new_flow_polls_within_the_smaller_of_its_interval_and_30_s(
    every: float, limit: float
) -> None:
    delays = [first_poll_delay(every * n / 1000, every) for n in range(1000)]
    assert min(delays) == 0
    assert max(delays) < limit
    # Spread out in phase order, not all at once.
    assert delays == sorted(delays)
    assert len({round(d, 6) for d in delays}) == 1000


def test_spread_of_5000_flows_every_5_minutes_is_17_polls_a_second() -> None:
    found = spread((name, FIVE_MINUTES) for name in NAMES)
    assert found.flows == 5000
    assert found.max_polls_per_s == 17
    assert found.mean_polls_per_s == pytest.approx(16.67, abs=0.01)
    assert found.log_fields() == {
        "flows": 5000,
        "every": "5m",
        "max_polls_per_s": 17,
        "mean_polls_per_s": 16.67,
    }


def test_spread_sums_the_busiest_second_of_each_interval() -> None:
    flows = [(f"fast-{n}", timedelta(seconds=10)) for n in range(25)]
    flows += [(f"slow-{n}", timedelta(minutes=1)) for n in range(60)]
    found = spread(flows)
    assert found.every == [timedelta(seconds=10), timedelta(minutes=1)]
    assert found.log_fields()["every"] == "10s,1m"
    assert found.max_polls_per_s == 3 + 1
    assert found.mean_polls_per_s == pytest.approx(2.5 + 1.0)


def test_spread_of_no_flows() -> None:
    found = spread([])
    assert (found.flows, found.max_polls_per_s, found.mean_polls_per_s) == (0, 0, 0)
    assert found.log_fields()["every"] == ""
