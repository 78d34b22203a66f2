"""`connector replay --wait`: following replayed deliveries until none is waiting."""

from __future__ import annotations

import asyncio

import asyncpg

from connector.progress_bar import Bar
from connector.replay_watch import ReplayProgress, replay_progress, watch
from tests.integration.dispatch_support import insert_event


class Recorded(Bar):
    """A bar that remembers what it was told instead of drawing."""

    def __init__(self) -> None:
        super().__init__(None, None)
        self.seen: list[tuple[int, int | None]] = []

    def update(self, *, items: int, pages: int | None = None, total: int | None = None) -> None:
        self.seen.append((items, total))


async def test_watch_returns_once_every_replayed_delivery_is_settled(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        ids = [
            str(did)
            for n in range(3)
            for did in await insert_event(conn, "hooks", f"ev-{n}", {"email": f"{n}@x.org"})
        ]
        assert await replay_progress(conn, ids) == ReplayProgress(0, 0, 3)
    shown = Recorded()
    settled = asyncio.Event()

    async def worker() -> None:
        # Plays the dispatcher: two sent, one dead again.
        async with db_pool.acquire() as conn:
            await conn.execute(
                "UPDATE deliveries SET state = 'delivered' WHERE id = ANY($1::uuid[])", ids[:2]
            )
            await conn.execute("UPDATE deliveries SET state = 'dead' WHERE id = $1::uuid", ids[2])
        settled.set()

    async with db_pool.acquire() as conn:
        first = await watch(conn, ids, shown, give_up_after=0)
        assert first == ReplayProgress(0, 0, 3)
        task = asyncio.create_task(worker())
        await settled.wait()
        final = await watch(conn, ids, shown, every=0.01)
        await task
    assert final == ReplayProgress(delivered=2, dead=1, waiting=0)
    assert shown.seen[0] == (0, 3) and shown.seen[-1] == (3, 3)


async def test_an_empty_or_unknown_batch_has_nothing_waiting(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        assert await replay_progress(conn, []) == ReplayProgress(0, 0, 0)
        unknown = ["00000000-0000-0000-0000-000000000001"]
        assert await watch(conn, unknown, Recorded()) == ReplayProgress(0, 0, 0)
