"""Leases: one worker at a time holds a resource (a connection's polling) until it expires.

A lease is a row in ``leases``. A worker that dies simply stops renewing, and the lease lapses
after its time to live; nobody has to clean up after it. Times come from the caller's clock so
that tests can move time without sleeping.
"""

from __future__ import annotations

import os
import socket
import uuid
from datetime import datetime, timedelta

import asyncpg

from connector.db.queries import q
from connector.errors import RetriableError


def default_worker_id() -> str:
    """``host-pid-random``: unique per process, and readable in lease rows and logs."""
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class LeaseLost(RetriableError):
    """Our lease lapsed or was taken over; the work done under it must not be committed."""


def connection_resource(connection_id: str | None, flow_name: str) -> str:
    """The lease name for polling a connection (or a connection-less flow)."""
    return f"poll:{connection_id}" if connection_id else f"poll-flow:{flow_name}"


async def acquire(
    conn: asyncpg.Connection, resource: str, owner: str, now: datetime, ttl: timedelta
) -> bool:
    """Take the lease if it is free, expired or already ours; False if another holds it."""
    row = await conn.fetchrow(q("lease_acquire"), resource, owner, now, now + ttl)
    return row is not None


async def renew(
    conn: asyncpg.Connection, resource: str, owner: str, now: datetime, ttl: timedelta
) -> None:
    """Extend our lease; raise :class:`LeaseLost` if it lapsed or is someone else's."""
    row = await conn.fetchrow(q("lease_renew"), resource, owner, now + ttl, now)
    if row is None:
        raise LeaseLost(f"lease {resource} is no longer held by {owner}")


async def release(conn: asyncpg.Connection, resource: str, owner: str) -> None:
    """Give the lease up (only if it is still ours)."""
    await conn.execute(q("lease_release"), resource, owner)


async def holder(conn: asyncpg.Connection, resource: str) -> tuple[str, datetime] | None:
    row = await conn.fetchrow(q("lease_holder"), resource)
    return None if row is None else (row["owner"], row["expires_at"])


async def check_for_commit(
    conn: asyncpg.Connection, resource: str, owner: str, now: datetime
) -> None:
    """Inside the commit transaction: lock the lease row and prove it is still ours."""
    row = await conn.fetchrow(q("lease_check_for_commit"), resource)
    if row is None or row["owner"] != owner or row["expires_at"] <= now:
        raise LeaseLost(f"lease {resource} lapsed before the poll could commit")
