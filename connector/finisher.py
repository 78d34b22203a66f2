"""Finished attempts written in groups: while one write is on its way, the next gathers.

Nobody waits on a write. Once a group has committed, the ``written`` callback gets each
attempt with whether it applied (False: the lease had been lost and another worker holds
the row); if the write failed, ``failed`` gets the group and the error, and the rows stay
``running`` until the rescuer hands them on. So what is reported as delivered is durably
marked delivered.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Generic, TypeVar

import asyncpg
import structlog

from connector.store import deliveries

log = structlog.get_logger("connector.dispatch")

T = TypeVar("T")


class Finisher(Generic[T]):
    """Writes ``store.deliveries.Finished`` rows in groups and reports each group's result.

    ``T`` is whatever the caller keeps beside a row to report on it.
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        clock: Callable[[], datetime],
        *,
        written: Callable[[Sequence[tuple[T, bool]]], None],
        failed: Callable[[Sequence[T], Exception], None],
        limit: int = 500,
    ) -> None:
        self.pool = pool
        self.clock = clock
        self.limit = limit
        self._written = written
        self._failed = failed
        self._waiting: list[tuple[deliveries.Finished, T]] = []
        self._writer: asyncio.Task[None] | None = None

    def add(self, row: deliveries.Finished, entry: T) -> None:
        """Write ``row`` with the next group; ``entry`` goes to the report."""
        self._waiting.append((row, entry))
        if self._writer is None or self._writer.done():
            self._writer = asyncio.create_task(self._write_all())

    async def _write_all(self) -> None:
        while self._waiting:
            group, self._waiting = self._waiting[: self.limit], self._waiting[self.limit :]
            try:
                async with self.pool.acquire() as conn:
                    applied = await deliveries.finish(
                        conn, finished=[row for row, _ in group], now=self.clock()
                    )
            except Exception as exc:  # reported per attempt; the rows stay running
                self._report(self._failed, [entry for _, entry in group], exc)
                continue
            self._report(self._written, [(entry, row.id in applied) for row, entry in group])

    def _report(self, report: Callable[..., None], *args: object) -> None:
        try:
            report(*args)
        except Exception:
            # A bug in reporting must not stop the writer: later groups would never commit.
            log.exception("delivery_report_failed")
