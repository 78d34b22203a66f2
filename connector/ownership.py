"""Which worker polls which connection: leases with a heartbeat, shared out fairly.

Every worker keeps a ``worker:<id>`` lease alive and tries to hold ``own:<connection>`` leases
for its fair share of the connections (their number divided by the live workers, rounded up).
A worker that dies stops renewing; within one lease period its connections lapse and the
others take them. A worker holding more than its share (because another joined) lets the
extra go, and the newcomer picks them up on its next tick.

Only the owner polls a connection, and only the owner runs that connection's SendPulse
actions (the dispatcher's claim checks the same lease), so one rate limiter really is the
only one talking to that account.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta

import asyncpg
import structlog

from connector import leases, metrics
from connector.db.health import DB_ERRORS, DatabaseHealth
from connector.store import leases_table
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

DEFAULT_TTL = timedelta(seconds=30)


def own_resource(connection_id: str) -> str:
    return f"own:{connection_id}"


def worker_resource(worker_id: str) -> str:
    return f"worker:{worker_id}"


class Ownership:
    """Holds this worker's share of the connections and renews it every third of the TTL."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        worker_id: str,
        connections: Iterable[str],
        *,
        ttl: timedelta = DEFAULT_TTL,
        clock: Callable[[], datetime] = utc_now,
        health: DatabaseHealth | None = None,
    ) -> None:
        self.pool = pool
        self.worker_id = worker_id
        self.ttl = ttl
        self.clock = clock
        self.connections = sorted(set(connections))
        self.owned: set[str] = set()
        self.health = health or DatabaseHealth()

    def owns(self, connection_id: str | None) -> bool:
        """Whether this worker may poll ``connection_id`` now (connection-less flows: yes)."""
        return connection_id is None or connection_id in self.owned

    def set_connections(self, connections: Iterable[str]) -> None:
        self.connections = sorted(set(connections))

    async def tick(self) -> None:
        """Heartbeat, then take free connections up to the fair share and drop the excess."""
        now = self.clock()
        async with self.pool.acquire() as conn:
            await leases.acquire(
                conn, worker_resource(self.worker_id), self.worker_id, now, self.ttl
            )
            workers = max(1, await leases_table.live_workers(conn, now=now))
            share = math.ceil(len(self.connections) / workers) if self.connections else 0
            held = {
                resource.removeprefix("own:")
                for resource in await leases_table.owned_resources(
                    conn, owner=self.worker_id, now=now
                )
            }
            owned: set[str] = set()
            for connection_id in self.connections:
                if connection_id in held:
                    if len(owned) < share:
                        await leases.acquire(
                            conn, own_resource(connection_id), self.worker_id, now, self.ttl
                        )
                        owned.add(connection_id)
                    else:
                        await leases.release(conn, own_resource(connection_id), self.worker_id)
                        log.info("connection_released", connection=connection_id, share=share)
            for connection_id in self.connections:
                if len(owned) >= share:
                    break
                if connection_id in owned:
                    continue
                if await leases.acquire(
                    conn, own_resource(connection_id), self.worker_id, now, self.ttl
                ):
                    owned.add(connection_id)
                    orphaned = await leases_table.clear_orphaned_poll_lease(
                        conn, connection_id=connection_id, now=now
                    )
                    if orphaned is not None:
                        log.info(
                            "poll_lease_cleared", connection=connection_id, dead_worker=orphaned
                        )
            for connection_id in held - set(self.connections):
                await leases.release(conn, own_resource(connection_id), self.worker_id)
        for gained in sorted(owned - self.owned):
            log.info("connection_acquired", connection=gained, worker=self.worker_id)
        for lost in sorted(self.owned - owned):
            log.info("connection_lost", connection=lost, worker=self.worker_id)
        self.owned = owned
        metrics.LEASES_HELD.set(len(owned))

    async def run(self, stop: asyncio.Event) -> None:
        """Tick until ``stop``; a database outage keeps the loop alive and is logged once."""
        while not stop.is_set():
            try:
                await self.tick()
                self.health.back(worker=self.worker_id)
            except DB_ERRORS as exc:
                # Without the database we cannot prove our leases; stop polling until it is back.
                self.owned = set()
                self.health.lost(exc, worker=self.worker_id)
            try:
                await asyncio.wait_for(stop.wait(), timeout=self.ttl.total_seconds() / 3)
            except TimeoutError:
                pass

    async def release_all(self) -> None:
        """Give every lease up at shutdown so another worker takes over at once."""
        try:
            async with self.pool.acquire() as conn:
                await leases_table.release_owned(conn, owner=self.worker_id)
        except DB_ERRORS as exc:
            log.warning("lease_release_failed", worker=self.worker_id, error=str(exc))
        self.owned = set()
        metrics.LEASES_HELD.set(0)
