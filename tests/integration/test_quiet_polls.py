"""Quiet polls: a poll that finds nothing commits nothing but its poll_runs row.

The engine's own in-test triggers (test_engine) over an in-memory list, on a real Postgres.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar

import asyncpg
import pytest

from connector import snapshot_poll
from connector.db.pool import json_codecs
from connector.engine import Poller, poll_flow
from connector.plugins import ApiClient, SnapshotChange
from connector.poll_runs import PollRunBook
from tests.integration.test_engine import (
    Clock,
    ItemCreated,
    ItemJoined,
    Params,
    Poll,
    Store,
    at,
    clock,
    make_flow,
    poll,
    poller,
    store,
)

__all__ = ["clock", "poll", "poller", "store"]  # fixtures, used by name

STATE = "SELECT cursor, updated_at FROM flow_states WHERE flow_name = 'f1'"
RUNS = "SELECT count(*) FROM poll_runs WHERE flow_name = 'f1'"


async def test_an_unchanged_list_moves_no_state_and_still_leaves_its_poll_run(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items = {k: {"id": k} for k in ("a", "b", "c")}
    await poll(ItemJoined)
    before = await db_pool.fetchrow(STATE)
    runs = await db_pool.fetchval(RUNS)
    result = await poll(ItemJoined)
    assert (result.status, result.items_seen, result.events_created) == ("ok", 3, 0)
    assert await db_pool.fetchrow(STATE) == before
    assert await db_pool.fetchval(RUNS) == runs + 1
    last = await db_pool.fetchrow(
        "SELECT worker, items_seen, events_created, error, requests FROM poll_runs "
        "WHERE flow_name = 'f1' ORDER BY id DESC LIMIT 1"
    )
    assert tuple(last) == ("w1", 3, 0, None, 1)
    # A change after quiet polls is still found, once.
    store.items["d"] = {"id": "d"}
    assert (await poll(ItemJoined)).events_created == 1
    assert (await poll(ItemJoined)).events_created == 0
    assert await db_pool.fetchval("SELECT count(*) FROM events") == 1


async def test_the_same_rows_in_another_order_are_diffed_and_find_nothing(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items = {k: {"id": k} for k in ("a", "b", "c")}
    await poll(ItemJoined)
    before = await db_pool.fetchrow(STATE)
    store.items = {k: {"id": k} for k in ("c", "a", "b")}
    assert (await poll(ItemJoined)).events_created == 0
    after = await db_pool.fetchrow(STATE)
    # Diffed and committed: a new digest, for the new order.
    assert after["updated_at"] > before["updated_at"]
    assert after["cursor"] != before["cursor"]
    assert await db_pool.fetchval("SELECT count(*) FROM events") == 0


async def test_a_quiet_watermark_poll_moves_no_state(
    poll: Poll, store: Store, db_pool: asyncpg.Pool, clock: Clock
) -> None:
    store.items["a"] = {"id": "a", "at": at(-1)}
    await poll(ItemCreated)
    before = await db_pool.fetchrow(STATE)
    assert (await poll(ItemCreated)).events_created == 0
    assert await db_pool.fetchrow(STATE) == before
    store.items["b"] = {"id": "b", "at": at(0.5)}
    clock.now = clock.now.replace(minute=1)
    assert (await poll(ItemCreated)).events_created == 1
    assert await db_pool.fetchrow(STATE) != before


async def test_a_flow_whose_last_poll_failed_commits_to_clear_its_error(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    store.items["a"] = {"id": "a"}
    await poll(ItemJoined)
    store.fail = RuntimeError("boom")
    with pytest.raises(RuntimeError):
        await poll(ItemJoined)
    assert await db_pool.fetchval("SELECT last_error FROM flow_states") is not None
    store.fail = None
    assert (await poll(ItemJoined)).status == "ok"
    assert await db_pool.fetchval("SELECT last_error FROM flow_states") is None


async def test_a_book_writes_quiet_rows_at_its_flush_and_keeps_them_if_it_fails(
    store: Store, db_pool: asyncpg.Pool, clock: Clock, database: str
) -> None:
    store.items["a"] = {"id": "a"}
    flow = make_flow(ItemJoined)

    async def poll_with(book: PollRunBook | None) -> None:
        await poll_flow(
            flow,
            Params(),
            client=store,
            pool=db_pool,
            worker="w1",
            clock=clock,
            trigger=ItemJoined,
            runs=book,
        )

    closed = await asyncpg.create_pool(database, min_size=1, max_size=1, init=json_codecs)
    await closed.close()
    book = PollRunBook(closed, "w1")
    await poll_with(book)  # the baseline commits: its row is written at once
    assert (await db_pool.fetchval(RUNS), book.pending) == (1, 0)
    await poll_with(book)
    await poll_with(book)
    assert (await db_pool.fetchval(RUNS), book.pending) == (1, 2)
    with pytest.raises(asyncpg.InterfaceError):
        await book.flush()
    assert book.pending == 2
    book.pool = db_pool
    assert await book.flush() == 2
    assert (await db_pool.fetchval(RUNS), book.pending) == (3, 0)
    rows = await db_pool.fetch(
        "SELECT worker, started_at, finished_at, items_seen, events_created FROM poll_runs "
        "ORDER BY id"
    )
    assert {(r["worker"], r["items_seen"], r["events_created"]) for r in rows} == {("w1", 1, 0)}
    assert all(r["started_at"] == clock.now == r["finished_at"] for r in rows)


class ProvedJoin(ItemJoined):
    """Asks the API to confirm each change; "ghost" is never confirmed."""

    key: ClassVar[str] = "test.proved_join"
    enriches: ClassVar[bool] = True
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added"})
    asked: ClassVar[list[str]] = []

    async def enrich(
        self, client: ApiClient, kind: SnapshotChange, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        self.asked.append(payload["id"])
        return None if payload["id"] == "ghost" else payload


async def test_a_commit_that_put_rows_back_stores_no_digest(
    poll: Poll, store: Store, db_pool: asyncpg.Pool
) -> None:
    ProvedJoin.asked.clear()
    store.items["a"] = {"id": "a"}
    await poll(ProvedJoin)
    store.items["ghost"] = {"id": "ghost"}
    assert (await poll(ProvedJoin)).events_created == 0
    # The snapshot left "ghost" out, so the same list must be diffed (and asked about) again.
    assert (await poll(ProvedJoin)).events_created == 0
    assert ProvedJoin.asked == ["ghost", "ghost"]


async def test_a_short_list_after_a_long_snapshot_is_diffed_in_sql(
    poll: Poll, store: Store, db_pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(snapshot_poll, "SNAPSHOT_BATCH", 3)
    store.items = {f"k{n}": {"id": f"k{n}"} for n in range(8)}
    await poll(ItemJoined)
    store.items = {"k1": {"id": "k1"}, "new": {"id": "new"}}
    assert (await poll(ItemJoined)).events_created == 8
    keys = await db_pool.fetch("SELECT item_key FROM snapshot_items ORDER BY item_key")
    assert [r["item_key"] for r in keys] == ["k1", "new"]
    # Diffed whole in SQL: an in-memory diff of the first rows read would have missed some.
    changed = await db_pool.fetch("SELECT item_key FROM events ORDER BY item_key")
    assert [r["item_key"] for r in changed] == [f"k{n}" for n in (0, 2, 3, 4, 5, 6, 7)] + ["new"]


async def test_polls_waiting_for_their_lease_hold_no_pooled_connection(
    store: Store, clock: Clock, database: str
) -> None:
    # Ten flows on one connection and a pool of two: a poll that waits for its siblings
    # must leave the pool free for the one that holds the lease's lock and needs a
    # connection to give the lease up.
    flows = [make_flow(ItemJoined).model_copy(update={"name": f"f{n}"}) for n in range(10)]
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2, init=json_codecs)
    try:
        poller = Poller()

        async def poll(flow: Any) -> Any:
            return await poll_flow(
                flow,
                Params(),
                client=store,
                pool=pool,
                worker="w1",
                clock=clock,
                trigger=ItemJoined,
                poller=poller,
            )

        # The poller's per-lease lock (private, taken only here): every poll queues on it.
        lock = poller._lock(("poll:main", "w1"))
        await lock.acquire()
        polls = [asyncio.create_task(poll(flow)) for flow in flows]
        for _ in range(100):
            await asyncio.sleep(0)
        # Every poll is now waiting for the lock; the pool must still have a connection.
        async with asyncio.timeout(10):
            async with pool.acquire() as conn:
                assert await conn.fetchval("SELECT 1") == 1
        lock.release()
        async with asyncio.timeout(60):
            results = await asyncio.gather(*polls)
        assert [r.status for r in results] == ["ok"] * 10
        assert await pool.fetchval("SELECT count(*) FROM leases") == 0
    finally:
        await pool.close()
