"""The scheduler: each flow at its phase, new flows soon, restarts and reloads keep phases."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from structlog.testing import capture_logs

from connector.config import Flow
from connector.phases import EPOCH, FIRST_POLL_WITHIN, phases
from connector.scheduler import FlowScheduler, PhaseTrigger, jitter_for

EVERY = timedelta(minutes=5)


def flow(name: str, every: timedelta = EVERY, **extra: object) -> Flow:
    return Flow.model_validate(
        {
            "name": name,
            "trigger": {"type": "sendpulse.subscriber_added", "params": {"mailing_list_id": 1}},
            "actions": [{"type": "log"}],
            "every": every,
            **extra,
        }
    )


async def nothing(flow_name: str) -> None:
    return None


@pytest.fixture
async def scheduler() -> AsyncIterator[FlowScheduler]:
    """A scheduler whose jobs are planned but never fire (APScheduler is not started)."""
    planned = FlowScheduler(nothing)
    yield planned
    await planned.shutdown(drain=1)


def seconds_into_interval(when: datetime, every: timedelta = EVERY) -> float:
    return (when - EPOCH).total_seconds() % every.total_seconds()


# -- the trigger -------------------------------------------------------------------------------


def test_the_trigger_fires_at_the_phase_plus_a_small_jitter() -> None:
    trigger = PhaseTrigger("a", EVERY, {"a": 120.0})
    now = datetime(2026, 12, 1, 14, 0, 30, tzinfo=UTC)
    fires = [trigger.get_next_fire_time(None, now) for _ in range(200)]
    slot = datetime(2026, 12, 1, 14, 2, 0, tzinfo=UTC)
    assert all(slot <= fire <= slot + timedelta(seconds=jitter_for(EVERY)) for fire in fires)
    assert len(set(fires)) > 1  # the jitter is there


def test_jitter_is_small() -> None:
    assert jitter_for(EVERY) == 0.5
    assert jitter_for(timedelta(seconds=10)) == pytest.approx(0.02)


def test_after_a_run_the_next_is_one_interval_on_and_jitter_does_not_add_up() -> None:
    trigger = PhaseTrigger("a", EVERY, {"a": 45.0})
    fire = trigger.get_next_fire_time(None, datetime(2026, 12, 1, 14, 0, tzinfo=UTC))
    for _ in range(1000):
        fire = trigger.get_next_fire_time(fire, fire)
        assert 45.0 <= seconds_into_interval(fire) <= 45.0 + jitter_for(EVERY)
    # Exactly 1,000 intervals after the first slot, plus at most one jitter.
    last_slot = datetime(2026, 12, 1, 14, 0, 45, tzinfo=UTC) + 1000 * EVERY
    assert last_slot <= fire <= last_slot + timedelta(seconds=jitter_for(EVERY))


def test_a_run_off_the_phase_is_followed_by_the_phase_at_least_half_an_interval_later() -> None:
    trigger = PhaseTrigger("a", EVERY, {"a": 100.0})
    # A first poll (or a manual kick) 20 s before the phase: that slot is skipped.
    early = datetime(2026, 12, 1, 14, 1, 20, tzinfo=UTC)
    after_early = trigger.get_next_fire_time(early, early)
    assert after_early - early >= EVERY / 2
    assert seconds_into_interval(after_early) == pytest.approx(100.0, abs=0.5)
    # One 3 minutes before it: the next is the phase in this interval.
    sooner = datetime(2026, 12, 1, 13, 58, 40, tzinfo=UTC)
    assert trigger.get_next_fire_time(sooner, sooner) - sooner < timedelta(minutes=3, seconds=1)


def test_the_trigger_reads_the_phase_table_at_each_firing() -> None:
    table = {"a": 10.0}
    trigger = PhaseTrigger("a", EVERY, table)
    now = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert seconds_into_interval(trigger.get_next_fire_time(None, now)) == pytest.approx(
        10.0, abs=0.5
    )
    table["a"] = 200.0
    assert seconds_into_interval(trigger.get_next_fire_time(None, now)) == pytest.approx(
        200.0, abs=0.5
    )


# -- the scheduler -----------------------------------------------------------------------------


async def test_new_flows_poll_within_30_s_in_phase_order(scheduler: FlowScheduler) -> None:
    flows = [flow(f"f{n}") for n in range(100)]
    before = datetime.now(UTC)
    scheduler.sync(flows)
    after = datetime.now(UTC)
    for f in flows:
        first = scheduler.next_poll(f.name)
        assert first is not None
        assert before <= first <= after + timedelta(seconds=FIRST_POLL_WITHIN)
        phase = scheduler.phase(f.name)
        assert phase is not None
        expected = before + timedelta(seconds=phase / 300 * FIRST_POLL_WITHIN)
        assert abs((first - expected).total_seconds()) <= (after - before).total_seconds() + 1e-6


async def test_a_short_interval_bounds_the_first_poll(scheduler: FlowScheduler) -> None:
    flows = [flow(f"f{n}", timedelta(seconds=10)) for n in range(20)]
    scheduler.sync(flows)
    latest = max(scheduler.next_poll(f.name) or EPOCH for f in flows)
    assert latest - datetime.now(UTC) < timedelta(seconds=10)


async def test_flows_that_polled_before_wait_for_their_phase(scheduler: FlowScheduler) -> None:
    flows = [flow(f"f{n}") for n in range(100)]
    scheduler.sync(flows, polled_before={f.name for f in flows})
    now = datetime.now(UTC)
    for f in flows:
        first = scheduler.next_poll(f.name)
        phase = scheduler.phase(f.name)
        assert first is not None and phase is not None
        assert now - timedelta(seconds=1) <= first < now + EVERY + timedelta(seconds=1)
        assert abs((seconds_into_interval(first) - phase + 150) % 300 - 150) <= jitter_for(EVERY)


def test_a_restart_gives_every_flow_the_same_phase() -> None:
    flows = [flow(f"flow-{n:04d}") for n in range(500)]
    first, second = FlowScheduler(nothing), FlowScheduler(nothing)
    first.sync(flows, polled_before={f.name for f in flows})
    second.sync(reversed(flows), polled_before={f.name for f in flows})
    for f in flows:
        assert first.phase(f.name) == second.phase(f.name)
        one, two = first.next_poll(f.name), second.next_poll(f.name)
        assert one is not None and two is not None
        # The same place in the interval (the two may fall in neighbouring intervals).
        apart = seconds_into_interval(one) - seconds_into_interval(two)
        assert abs((apart + 150) % 300 - 150) <= jitter_for(EVERY)


async def test_a_reload_keeps_jobs_and_phases_and_starts_only_new_flows_early(
    scheduler: FlowScheduler,
) -> None:
    flows = [flow(f"flow-{n:04d}") for n in range(1000)]
    scheduler.sync(flows, polled_before={f.name for f in flows})
    planned = {f.name: scheduler.next_poll(f.name) for f in flows}
    phases_before = {f.name: scheduler.phase(f.name) for f in flows}

    scheduler.sync(flows)  # the same file again
    assert {f.name: scheduler.next_poll(f.name) for f in flows} == planned
    assert {f.name: scheduler.phase(f.name) for f in flows} == phases_before

    scheduler.sync([*flows, flow("added")])
    assert {f.name: scheduler.next_poll(f.name) for f in flows} == planned
    moved = max(abs((scheduler.phase(f.name) or 0) - (phases_before[f.name] or 0)) for f in flows)
    assert moved < 300 / 1000
    added = scheduler.next_poll("added")
    assert added is not None
    assert added - datetime.now(UTC) < timedelta(seconds=FIRST_POLL_WITHIN)


async def test_a_changed_interval_retimes_only_that_flow(scheduler: FlowScheduler) -> None:
    flows = [flow("a"), flow("b")]
    scheduler.sync(flows, polled_before={"a", "b"})
    planned_b = scheduler.next_poll("b")
    scheduler.sync([flow("a", timedelta(seconds=10)), flow("b")])
    a = scheduler.next_poll("a")
    assert a is not None
    # Not a new flow, so not the first-poll rule: the next slot of its new interval.
    assert a - datetime.now(UTC) <= timedelta(seconds=10.1)
    assert scheduler.next_poll("b") == planned_b


async def test_removed_and_disabled_flows_are_unscheduled(scheduler: FlowScheduler) -> None:
    scheduler.sync([flow("a"), flow("b"), flow("c", enabled=False)])
    assert scheduler.scheduled == ["a", "b"]
    scheduler.sync([flow("b")])
    assert scheduler.scheduled == ["b"]
    assert scheduler.next_poll("a") is None
    assert scheduler.phase("a") is None


async def test_schedule_spread_is_logged_at_start_and_at_each_sync() -> None:
    flows = [flow(f"flow-{n:05d}") for n in range(5000)]
    scheduler = FlowScheduler(nothing)
    with capture_logs() as logs:
        scheduler.start(flows, polled_before={f.name for f in flows})
        assert scheduler.running
        scheduler.sync([*flows, flow("one-more", timedelta(minutes=1))])
    spreads = [entry for entry in logs if entry["event"] == "schedule_spread"]
    assert [(s["flows"], s["every"], s["max_polls_per_s"], s["log_level"]) for s in spreads] == [
        (5000, "5m", 17, "info"),
        (5001, "1m,5m", 18, "info"),
    ]
    await scheduler.shutdown(drain=1)


def test_phases_match_the_phase_function() -> None:
    # What a capacity check computes from connector.phases is what the scheduler runs.
    names = [f"flow-{n}" for n in range(50)]
    assert phases((name, EVERY) for name in names)["flow-7"] == pytest.approx(
        phases((name, EVERY) for name in reversed(names))["flow-7"]
    )
