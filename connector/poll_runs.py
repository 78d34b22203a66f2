"""The ``poll_runs`` rows of quiet polls, written together rather than one transaction each.

A poll that found nothing moves no state: its only write is its ``poll_runs`` row. At a few
hundred polls a second one commit each costs Postgres more than everything else those polls
do, so a worker keeps such rows in a :class:`PollRunBook` and writes them in one statement
per interval (a second by default). The rows are the same as they would have been (start,
finish, requests, items); they reach the table up to one interval late, and a worker killed
with ``kill -9`` loses at most that interval of quiet rows, never an event or a cursor.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import structlog

from connector.store import poll_runs_table

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class QuietRun:
    """One quiet poll, as its ``poll_runs`` row will say."""

    flow_name: str
    connection_id: str | None
    started_at: datetime
    finished_at: datetime
    requests: int
    items_seen: int


class PollRunBook:
    """Gathers quiet polls' rows; :meth:`run` writes them every ``every`` seconds."""

    def __init__(
        self, pool: asyncpg.Pool, worker: str, *, every: float = 1.0, limit: int = 5000
    ) -> None:
        self.pool = pool
        self.worker = worker
        self.every = every
        # A backlog this long is written at once, not at the next tick.
        self.limit = limit
        self._rows: list[QuietRun] = []
        self._full = asyncio.Event()
        self._lock = asyncio.Lock()

    def add(self, run: QuietRun) -> None:
        self._rows.append(run)
        if len(self._rows) >= self.limit:
            self._full.set()

    @property
    def pending(self) -> int:
        return len(self._rows)

    async def flush(self) -> int:
        """Write every row gathered so far in one statement; returns how many."""
        async with self._lock:
            rows, self._rows = self._rows, []
            self._full.clear()
            if not rows:
                return 0
            try:
                await write_quiet_runs(self.pool, self.worker, rows)
            except BaseException:
                # Kept for the next try: a database away for a moment loses no row.
                self._rows[:0] = rows
                raise
            return len(rows)

    async def run(self, stop: asyncio.Event) -> None:
        """Write the gathered rows every interval until ``stop``, then once more."""
        while not stop.is_set():
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wait(stop), self.every)
            try:
                await self.flush()
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("poll_runs_write_failed", error=str(exc), waiting=self.pending)
        await self.flush()

    async def _wait(self, stop: asyncio.Event) -> None:
        waiters = [asyncio.ensure_future(self._full.wait()), asyncio.ensure_future(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()


async def write_quiet_runs(pool: asyncpg.Pool, worker: str, rows: list[QuietRun]) -> None:
    await poll_runs_table.insert_quiet(
        pool,
        worker=worker,
        flow_names=[r.flow_name for r in rows],
        connection_ids=[r.connection_id for r in rows],
        started_at=[r.started_at for r in rows],
        finished_at=[r.finished_at for r in rows],
        requests=[r.requests for r in rows],
        items_seen=[r.items_seen for r in rows],
    )
