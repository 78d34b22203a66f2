"""The flow scheduler: jitter, one poll of a flow at a time, a backlog run once, the drain."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    EVENT_JOB_SUBMITTED,
    JobEvent,
)
from structlog.testing import capture_logs

from connector.config import ActionSpec, Flow, TriggerSpec
from connector.scheduler import FlowScheduler, PhaseTrigger, jitter_for


def flow(name: str = "f1", every: float = 600) -> Flow:
    return Flow(
        name=name,
        trigger=TriggerSpec(type="sendpulse.campaign_created", connection="main", params={}),
        actions=[ActionSpec(type="log", params={})],
        every=timedelta(seconds=every),
    )


class Polls:
    """A poll function whose runs the test holds open and lets finish."""

    def __init__(self) -> None:
        self.started: list[str] = []
        self.finished: list[str] = []
        self.cancelled: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self.began = asyncio.Event()
        self.release = asyncio.Event()

    async def __call__(self, name: str) -> None:
        self.started.append(name)
        self.running += 1
        self.most_at_once = max(self.most_at_once, self.running)
        self.began.set()
        try:
            await self.release.wait()
        except asyncio.CancelledError:
            self.cancelled.append(name)
            raise
        finally:
            self.running -= 1
        self.finished.append(name)


async def wait_for(event: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(event.wait(), 30)
    except TimeoutError:
        raise AssertionError(f"gave up after 30 s waiting for {what}") from None


@pytest.fixture
async def polls() -> AsyncIterator[Polls]:
    yield Polls()


async def test_each_next_run_is_its_phase_plus_at_most_a_small_jitter() -> None:
    every = timedelta(minutes=5)
    trigger = PhaseTrigger("f1", every, {"f1": 120.0})
    # 12:02:00 is 120 s into a five-minute interval counted from 1970: the flow's slot.
    previous = datetime(2026, 3, 1, 12, 2, tzinfo=UTC)
    now = previous + timedelta(seconds=1)
    delays = [
        (trigger.get_next_fire_time(previous, now) - previous).total_seconds() for _ in range(300)
    ]
    assert jitter_for(every) == 0.5
    assert all(300.0 <= d <= 300.5 for d in delays), (min(delays), max(delays))
    # Really jittered, not one fixed offset.
    assert len(set(delays)) > 1
    assert jitter_for(timedelta(hours=2)) == 0.5  # capped
    assert jitter_for(timedelta(seconds=10)) == 0.02


async def test_a_flow_never_polls_twice_at_once(polls: Polls) -> None:
    scheduler = FlowScheduler(polls)
    refused = asyncio.Event()

    def on_event(event: JobEvent) -> None:
        if event.code == EVENT_JOB_MAX_INSTANCES:
            refused.set()

    scheduler._scheduler.add_listener(on_event, EVENT_JOB_MAX_INSTANCES)
    scheduler.start([flow()])
    try:
        await wait_for(polls.began, "the first poll")
        scheduler.run_now("f1")  # due again while the first run is still going
        await wait_for(refused, "APScheduler to refuse a second instance")
        assert polls.started == ["f1"]
        polls.release.set()
    finally:
        await scheduler.shutdown(drain=5)
    assert polls.most_at_once == 1
    assert polls.finished == ["f1"]


def _phase_ago(seconds: float, every: float) -> float:
    """The phase whose latest slot was ``seconds`` ago (slots count from 1970)."""
    return (datetime.now(UTC).timestamp() - seconds) % every


async def test_a_backlog_of_missed_runs_becomes_one_run(polls: Polls) -> None:
    polls.release.set()
    scheduler = FlowScheduler(polls)
    submitted: list[list[datetime]] = []
    ran = asyncio.Event()

    def on_submit(event: JobEvent) -> None:
        submitted.append(list(event.scheduled_run_times))  # type: ignore[attr-defined]
        ran.set()

    scheduler._scheduler.add_listener(on_submit, EVENT_JOB_SUBMITTED)
    scheduler.start([])
    scheduler._scheduler.pause()
    scheduler.sync([flow(every=600)])
    # Three runs are due (the worker was busy or asleep for 21 minutes); the flow's latest
    # slot was 10 s ago, well inside the half interval a late run may still take.
    scheduler._phases["f1"] = _phase_ago(10, 600)
    job = scheduler._scheduler.get_job("f1")
    job.modify(next_run_time=datetime.now(UTC) - timedelta(seconds=1260))
    scheduler._scheduler.resume()
    try:
        await wait_for(ran, "the backlog to run")
        await wait_for(polls.began, "the coalesced poll")
    finally:
        await scheduler.shutdown(drain=5)
    assert len(submitted) == 1
    assert len(submitted[0]) == 1, submitted
    assert polls.started == ["f1"]


async def test_a_backlog_more_than_half_an_interval_late_waits_for_the_next_slot(
    polls: Polls,
) -> None:
    polls.release.set()
    scheduler = FlowScheduler(polls)
    missed = asyncio.Event()
    scheduler._scheduler.add_listener(lambda _event: missed.set(), EVENT_JOB_MISSED)
    scheduler.start([])
    scheduler._scheduler.pause()
    scheduler.sync([flow(every=600)])
    # The latest slot was 400 s ago: running it now would put the flow off its phase.
    scheduler._phases["f1"] = _phase_ago(400, 600)
    job = scheduler._scheduler.get_job("f1")
    job.modify(next_run_time=datetime.now(UTC) - timedelta(seconds=1260))
    scheduler._scheduler.resume()
    try:
        await wait_for(missed, "the late run to be let go")
        following = scheduler.next_poll("f1")
    finally:
        await scheduler.shutdown(drain=5)
    assert polls.started == []
    # The next poll is the flow's next slot, 200 s from now (plus at most the jitter).
    assert following is not None
    ahead = (following - datetime.now(UTC)).total_seconds()
    assert 150 < ahead <= 200.5, ahead


async def test_shutdown_lets_a_poll_in_flight_finish_within_the_drain(polls: Polls) -> None:
    scheduler = FlowScheduler(polls)
    scheduler.start([flow()])
    await wait_for(polls.began, "the first poll")
    with capture_logs() as logs:
        stopping = asyncio.create_task(scheduler.shutdown(drain=30))
        await asyncio.sleep(0)
        assert not stopping.done()  # it waits for the poll...
        polls.release.set()  # ...which finishes, well inside the drain
        await asyncio.wait_for(stopping, 30)
    assert polls.finished == ["f1"]
    assert polls.cancelled == []
    assert [e["event"] for e in logs] == []
    assert not scheduler.running


async def test_shutdown_cancels_a_poll_still_running_at_the_deadline(polls: Polls) -> None:
    scheduler = FlowScheduler(polls)
    scheduler.start([flow()])
    await wait_for(polls.began, "the first poll")
    with capture_logs() as logs:
        await scheduler.shutdown(drain=0.05)
    # Cancelled, and awaited: nothing of the poll runs after shutdown returns.
    assert polls.cancelled == ["f1"]
    assert polls.running == 0
    assert [(e["event"], e.get("count")) for e in logs] == [("polls_cancelled_at_shutdown", 1)]
