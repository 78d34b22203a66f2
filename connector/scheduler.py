"""APScheduler wiring: one interval job per flow, never overlapping, drained on shutdown.

Each job only names its flow; the poll looks the flow up in the current config, so a reload
(SIGHUP) that changes a flow's params takes effect at its next run without touching the job.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable
from datetime import UTC, datetime, timedelta

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from connector.config import Flow

log = structlog.get_logger(__name__)

PollFn = Callable[[str], Awaitable[None]]


def jitter_for(every: timedelta) -> float:
    """Up to 10% of the interval (at most 30 s), so a thousand flows do not fire together."""
    return min(every.total_seconds() * 0.1, 30.0)


class FlowScheduler:
    """Runs ``poll(flow_name)`` for every enabled flow at its interval."""

    def __init__(self, poll: PollFn, *, first_run_spread: float | None = None) -> None:
        self._poll = poll
        self._scheduler = AsyncIOScheduler(timezone=UTC)
        self._intervals: dict[str, timedelta] = {}
        self._inflight: set[asyncio.Task[None]] = set()
        self._first_run_spread = first_run_spread
        self.running = False

    def start(self, flows: Iterable[Flow]) -> None:
        self._scheduler.start()
        self.running = True
        self.sync(flows)

    def sync(self, flows: Iterable[Flow]) -> None:
        """Make the jobs match ``flows``: add new ones, drop removed ones, re-time changed ones."""
        wanted = {flow.name: flow.every for flow in flows if flow.enabled}
        for name in list(self._intervals):
            if name not in wanted:
                self._scheduler.remove_job(name)
                del self._intervals[name]
                log.info("flow_unscheduled", flow=name)
        for name, every in wanted.items():
            if self._intervals.get(name) == every:
                continue
            seconds = every.total_seconds()
            spread = seconds if self._first_run_spread is None else self._first_run_spread
            # The first poll comes soon, spread out so that workers and flows do not align.
            first = datetime.now(UTC) + timedelta(seconds=random.uniform(0, min(spread, 5.0)))  # noqa: S311 - spreading load, not security
            self._scheduler.add_job(
                self._run,
                IntervalTrigger(seconds=seconds, jitter=jitter_for(every), timezone=UTC),
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
            log.info("flow_scheduled", flow=name, every_s=seconds)

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
