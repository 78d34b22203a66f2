"""APScheduler wiring: one job per flow at its phase, never overlapping, drained on shutdown.

Each job only names its flow; the poll looks the flow up in the current config, so a reload
(SIGHUP) that changes a flow's params takes effect at its next run without touching the job.
When a flow polls is :mod:`connector.phases`' business: at a fixed place in its interval, the
same after a restart or a reload, plus a little jitter.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Collection, Iterable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.base import BaseTrigger

from connector.config import Flow
from connector.phases import first_poll_delay, next_slot, phases, spread

log = structlog.get_logger(__name__)

PollFn = Callable[[str], Awaitable[None]]


def jitter_for(every: timedelta) -> float:
    """Up to 0.2% of the interval, at most half a second: phases already keep flows apart."""
    return min(every.total_seconds() * 0.002, 0.5)


class PhaseTrigger(BaseTrigger):  # type: ignore[misc]  # APScheduler ships no type hints
    """Fires at a flow's phase in each interval, at least half an interval after the last run.

    The phase is read from the scheduler's table at every firing, so a reload that moves it
    needs no new job. "Half an interval" lets a first poll or a manual kick come early without
    a second poll just after it.
    """

    __slots__ = ("every", "jitter", "name", "table")

    def __init__(self, name: str, every: timedelta, table: dict[str, float]) -> None:
        self.name = name
        self.every = every.total_seconds()
        self.jitter = jitter_for(every)
        self.table = table

    def get_next_fire_time(self, previous_fire_time: datetime | None, now: datetime) -> datetime:
        after = now
        if previous_fire_time is not None:
            after = previous_fire_time + timedelta(seconds=self.every / 2)
        slot = next_slot(self.table.get(self.name, 0.0), self.every, after)
        return slot + timedelta(seconds=random.uniform(0, self.jitter))  # noqa: S311 - spreading load, not security

    def __repr__(self) -> str:
        return f"PhaseTrigger(every={self.every:g}s, phase={self.table.get(self.name, 0.0):g}s)"


class FlowScheduler:
    """Runs ``poll(flow_name)`` for every enabled flow, each at its phase of its interval."""

    def __init__(self, poll: PollFn) -> None:
        self._poll = poll
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._intervals: dict[str, timedelta] = {}
        # Shared with every job's trigger: updated in place when the flows change.
        self._phases: dict[str, float] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self.running = False

    def start(self, flows: Iterable[Flow], polled_before: Collection[str] = ()) -> None:
        self._scheduler.start()
        self.running = True
        self.sync(flows, polled_before)

    def sync(self, flows: Iterable[Flow], polled_before: Collection[str] = ()) -> None:
        """Make the jobs match ``flows``: add new ones, drop removed ones, re-time changed ones.

        A flow that is neither scheduled yet nor in ``polled_before`` (the flows the database
        holds a state for) is new: its first poll comes within min(every, 30 s).
        """
        wanted = {flow.name: flow.every for flow in flows if flow.enabled}
        for name in list(self._intervals):
            if name not in wanted:
                self._scheduler.remove_job(name)
                del self._intervals[name]
                log.info("flow_unscheduled", flow=name)
        found = phases(wanted.items())
        self._phases.clear()
        self._phases.update(found)
        now = datetime.now(UTC)
        for name, every in wanted.items():
            previous = self._intervals.get(name)
            if previous == every:
                continue
            seconds = every.total_seconds()
            trigger = PhaseTrigger(name, every, self._phases)
            if previous is None and name not in polled_before:
                first = now + timedelta(seconds=first_poll_delay(found[name], seconds))
            else:
                first = trigger.get_next_fire_time(None, now)
            if previous is not None:
                # Removed first: a scheduler not started yet keeps a replaced job beside the new.
                self._scheduler.remove_job(name)
            self._scheduler.add_job(
                self._run,
                trigger,
                args=[name],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                # A run delayed by a busy loop still happens if it is less than half late.
                misfire_grace_time=max(1, int(seconds / 2)),
                next_run_time=first,
                replace_existing=True,
            )
            self._intervals[name] = every
            log.debug("flow_scheduled", flow=name, every_s=seconds, phase_s=found[name])
        log.info("schedule_spread", **spread(wanted.items()).log_fields())

    async def _run(self, flow_name: str) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            await self._poll(flow_name)
        except Exception:
            # The poll logs its own failures; this keeps one bad flow from stopping the job.
            log.exception("poll_crashed", flow=flow_name)
        finally:
            if task is not None:
                self._inflight.discard(task)

    def run_now(self, flow_name: str) -> None:
        """Bring a flow's next poll forward (used after a webhook or a manual kick)."""
        job = self._scheduler.get_job(flow_name)
        if job is not None:
            job.modify(next_run_time=datetime.now(UTC))

    def next_poll(self, flow_name: str) -> datetime | None:
        """When ``flow_name`` polls next, or None if it is not scheduled."""
        job = self._scheduler.get_job(flow_name)
        return None if job is None else job.next_run_time

    def phase(self, flow_name: str) -> float | None:
        """Seconds into each interval at which ``flow_name`` polls (see connector.phases)."""
        return self._phases.get(flow_name)

    @property
    def scheduled(self) -> list[str]:
        return sorted(self._intervals)

    async def shutdown(self, drain: float) -> None:
        """Stop firing new polls and wait up to ``drain`` seconds for those in flight."""
        if not self.running:
            return
        self.running = False
        # Pause, not shut down, first: APScheduler's shutdown cancels the coroutine jobs in
        # flight at once, which would leave nothing to drain.
        self._scheduler.pause()
        pending = set(self._inflight)
        if pending:
            _done, still = await asyncio.wait(pending, timeout=drain)
            for task in still:
                task.cancel()
            if still:
                log.warning("polls_cancelled_at_shutdown", count=len(still))
                # A cancelled poll rolls back and lets go of its lease before the worker
                # releases its connections.
                await asyncio.gather(*still, return_exceptions=True)
        self._scheduler.shutdown(wait=False)
