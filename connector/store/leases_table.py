"""The ``leases`` table: poll leases, connection ownership and worker heartbeats."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from connector.db.queries import q


@dataclass(frozen=True)
class LeaseRow:
    """Who holds a lease, and until when."""

    owner: str
    expires_at: datetime


def _lease(row: asyncpg.Record | None) -> LeaseRow | None:
    return None if row is None else LeaseRow(row["owner"], row["expires_at"])


async def acquire(
    conn: asyncpg.Connection, *, resource: str, owner: str, now: datetime, expires_at: datetime
) -> bool:
    """Take (or extend) the lease if it is free, expired or ``owner``'s; False otherwise."""
    return await conn.fetchrow(q("lease_acquire"), resource, owner, now, expires_at) is not None


async def renew(
    conn: asyncpg.Connection, *, resource: str, owner: str, expires_at: datetime, now: datetime
) -> bool:
    """Move the expiry of ``owner``'s live lease; False if it lapsed or is someone else's."""
    return await conn.fetchrow(q("lease_renew"), resource, owner, expires_at, now) is not None


async def release(conn: asyncpg.Connection, *, resource: str, owner: str) -> None:
    await conn.execute(q("lease_release"), resource, owner)


async def holder(conn: asyncpg.Connection, *, resource: str) -> LeaseRow | None:
    return _lease(await conn.fetchrow(q("lease_holder"), resource))


async def lock_for_commit(conn: asyncpg.Connection, *, resource: str) -> LeaseRow | None:
    """The lease row, locked until the caller's transaction ends."""
    return _lease(await conn.fetchrow(q("lease_check_for_commit"), resource))


async def live_workers(conn: asyncpg.Connection, *, now: datetime) -> int:
    """How many workers' heartbeat leases are live."""
    return int(await conn.fetchval(q("live_workers"), now))


async def owned_resources(conn: asyncpg.Connection, *, owner: str, now: datetime) -> list[str]:
    """The live ``own:`` leases of ``owner``, by resource name."""
    return [row["resource"] for row in await conn.fetch(q("owned_leases"), owner, now)]


async def clear_orphaned_poll_lease(
    conn: asyncpg.Connection, *, connection_id: str, now: datetime
) -> str | None:
    """Drop a poll lease whose worker has no heartbeat left; returns that worker's id."""
    owner: str | None = await conn.fetchval(q("clear_orphaned_poll_lease"), connection_id, now)
    return owner


async def release_owned(conn: asyncpg.Connection, *, owner: str) -> None:
    """Give up every ``own:`` lease of ``owner`` and its heartbeat."""
    await conn.execute(q("release_owned"), owner)
