"""One poll in progress, and the rows every poll writes whatever it finds.

A :class:`PollContext` carries what one poll of one flow works with (its trigger, client,
lease, clock and the state it started from) and the one pooled connection it takes for its
commit; the writes here (the flow's state, the ``poll_runs`` row) are shared by the
watermark and the snapshot polls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal

import asyncpg

from connector import leases
from connector.config import Flow
from connector.plugins import ApiClient, Trigger
from connector.poll_runs import PollRunBook, QuietRun, write_quiet_runs
from connector.progress import PollProgress
from connector.store import flow_states, poll_runs_table

Clock = Callable[[], datetime]


@dataclass
class PollResult:
    """What one poll did (the figures of its ``poll_finished`` line)."""

    status: Literal["ok", "skipped", "paused", "failed"]
    requests: int = 0
    items_seen: int = 0
    events_created: int = 0
    held_back: int = 0
    baseline: bool = False
    error: str | None = None
    cursor: Any = None
    # Wall time spent fetching, and in the diff and commit (the transaction), in ms.
    fetch_ms: int = 0
    diff_ms: int = 0


@dataclass
class PollContext:
    """One poll of one flow as it runs: what it reads with, where it started, what it holds."""

    flow: Flow
    trigger: Trigger
    client: ApiClient
    pool: asyncpg.Pool
    worker: str
    clock: Clock
    lease_ttl: timedelta
    resource: str
    started: datetime
    state_key: str
    # The fingerprint of the account this poll reaches (None: unknown, nothing to compare).
    account: str | None
    fresh: bool
    previous_cursor: Any
    last_error: str | None
    # Where a quiet poll's poll_runs row goes: a worker's book, or (None) straight in.
    runs: PollRunBook | None = None
    # Set when the commit put snapshot rows back: the snapshot then differs from the list
    # just read, so the list's digest must not be stored as the snapshot's.
    restored: bool = field(init=False, default=False)
    renewed_at: datetime = field(init=False)
    t0: float = field(init=False)
    # Taken for the commit (or from the first COPY batch of a long list) and held to the end
    # of the poll; a poll waiting for the API or its rate limiter holds none of the pool's
    # few connections, which other polls need to start and to commit.
    _conn: Any = field(init=False, default=None)
    # Enrichments made before the commit, by (kind, key, fingerprint, previous, payload).
    enriched: dict[tuple[str, ...], dict[str, Any] | None] = field(init=False, default_factory=dict)
    # Pages and items so far, for the status page and poll_progress lines (progress.py).
    progress: PollProgress | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.renewed_at = self.started
        self.t0 = time.monotonic()

    @property
    def conn(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("the poll holds no database connection; await connect() first")
        conn: asyncpg.Connection = self._conn
        return conn

    @property
    def holds_connection(self) -> bool:
        return self._conn is not None

    async def connect(self) -> asyncpg.Connection:
        if self._conn is None:
            self._conn = await self.pool.acquire()
        return self.conn

    async def disconnect(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            await self.pool.release(conn)

    def ms_since(self, mark: float) -> int:
        return round((time.monotonic() - mark) * 1000)

    async def heartbeat(self) -> None:
        """Renew the lease during long fetches, so a big list can take longer than its TTL."""
        now = self.clock()
        if now - self.renewed_at >= self.lease_ttl / 3:
            if self._conn is not None:
                await leases.renew(self._conn, self.resource, self.worker, now, self.lease_ttl)
            else:
                async with self.pool.acquire() as conn:
                    await leases.renew(conn, self.resource, self.worker, now, self.lease_ttl)
            self.renewed_at = now


async def insert_poll_run(
    run: PollContext, requests: int, items: int, created: int, error: str | None
) -> None:
    await poll_runs_table.insert(
        run.conn,
        flow_name=run.flow.name,
        connection_id=run.flow.trigger.connection,
        worker=run.worker,
        started_at=run.started,
        finished_at=run.clock(),
        requests=requests,
        items_seen=items,
        events_created=created,
        error=error,
    )


async def record_quiet(run: PollContext, requests: int, items: int) -> None:
    """A poll that found nothing: its poll_runs row is all it writes, and no transaction.

    Nothing it read needs the lease at a commit: the state stays as the last commit left it.
    """
    row = QuietRun(
        flow_name=run.flow.name,
        connection_id=run.flow.trigger.connection,
        started_at=run.started,
        finished_at=run.clock(),
        requests=requests,
        items_seen=items,
    )
    if run.runs is not None:
        run.runs.add(row)
    else:
        await write_quiet_runs(run.pool, run.worker, [row])


async def save_state(run: PollContext, cursor: Any) -> None:
    await flow_states.save(
        run.conn,
        flow_name=run.flow.name,
        connection_id=run.flow.trigger.connection,
        trigger_type=run.trigger.key,
        state_key=run.state_key,
        cursor=cursor,
        baseline_done=True,
        last_error=None,
        account_fingerprint=run.account,
    )
