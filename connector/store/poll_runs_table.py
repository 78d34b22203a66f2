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
