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

from connector.errors import RetriableError
from connector.store import leases_table


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
    return await leases_table.acquire(
        conn, resource=resource, owner=owner, now=now, expires_at=now + ttl
    )


async def renew(
    conn: asyncpg.Connection, resource: str, owner: str, now: datetime, ttl: timedelta
) -> None:
    """Extend our lease; raise :class:`LeaseLost` if it lapsed or is someone else's."""
    if not await leases_table.renew(
        conn, resource=resource, owner=owner, expires_at=now + ttl, now=now
    ):
        raise LeaseLost(f"lease {resource} is no longer held by {owner}")


async def release(conn: asyncpg.Connection, resource: str, owner: str) -> None:
    """Give the lease up (only if it is still ours)."""
    await leases_table.release(conn, resource=resource, owner=owner)


async def holder(conn: asyncpg.Connection, resource: str) -> tuple[str, datetime] | None:
    row = await leases_table.holder(conn, resource=resource)
    return None if row is None else (row.owner, row.expires_at)


async def check_for_commit(
    conn: asyncpg.Connection, resource: str, owner: str, now: datetime
) -> None:
    """Inside the commit transaction: lock the lease row and prove it is still ours."""
    row = await leases_table.lock_for_commit(conn, resource=resource)
    if row is None or row.owner != owner or row.expires_at <= now:
        raise LeaseLost(f"lease {resource} lapsed before the poll could commit")
