"""``connector replay --wait``: follow replayed deliveries until none is waiting.

Replay only puts deliveries back to pending; a running worker sends them. Replaying thousands
after an outage takes a while at the receiver's pace, so this shows how far it has got (a
Rich bar with done, rate and time left on a terminal) and returns the final counts.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

from connector.progress_bar import Bar
from connector.store import deliveries


@dataclass(frozen=True)
class ReplayProgress:
    delivered: int
    dead: int
    waiting: int


async def replay_progress(conn: asyncpg.Connection, ids: Sequence[str]) -> ReplayProgress:
    delivered, dead, waiting = await deliveries.replay_progress(
        conn, ids=[uuid.UUID(i) for i in ids]
    )
    return ReplayProgress(delivered, dead, waiting)


async def watch(
    conn: asyncpg.Connection,
    ids: Sequence[str],
    shown: Bar,
    *,
    every: float = 0.5,
    give_up_after: float | None = None,
) -> ReplayProgress:
    """Until none of ``ids`` is pending or running (or ``give_up_after`` s); the last counts."""
    loop = asyncio.get_running_loop()
    deadline = None if give_up_after is None else loop.time() + give_up_after
    while True:
        now = await replay_progress(conn, ids)
        shown.update(items=now.delivered + now.dead, total=len(ids))
        if now.waiting == 0 or (deadline is not None and loop.time() >= deadline):
            return now
        await asyncio.sleep(every)
