"""The ``poll_runs`` table: one row per poll, what it read and what it made."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from connector.db.queries import q


async def insert_quiet(
    db: asyncpg.Pool | asyncpg.Connection,
    *,
    worker: str,
    flow_names: Sequence[str],
    connection_ids: Sequence[str | None],
    started_at: Sequence[datetime],
    finished_at: Sequence[datetime],
    requests: Sequence[int],
    items_seen: Sequence[int],
) -> None:
    """The rows of polls that found nothing new and failed nowhere, in one statement."""
    await db.execute(
        q("poll_runs_insert_many"),
        worker,
        list(flow_names),
        list(connection_ids),
        list(started_at),
        list(finished_at),
        list(requests),
        list(items_seen),
    )


async def insert(
    conn: asyncpg.Connection,
    *,
    flow_name: str,
    connection_id: str | None,
    worker: str,
    started_at: datetime,
    finished_at: datetime,
    requests: int,
    items_seen: int,
    events_created: int,
    error: str | None,
) -> None:
    """One poll's row, written in the poll's own transaction (a commit, or a failure)."""
    await conn.execute(
        q("poll_run_insert"),
        flow_name,
        connection_id,
        worker,
        started_at,
        finished_at,
        requests,
        items_seen,
        events_created,
        error,
    )
