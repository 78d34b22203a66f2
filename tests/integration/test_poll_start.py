"""The statement that starts a poll (``store.poll_start``): the poll lease, the flow's state and
the connection's status in one round trip; and where the engine gives the lease up."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

import asyncpg
import pytest

from connector.engine import STORED_ACCOUNT, Poller, poll_flow
from connector.errors import RetriableError
from connector.poll_runs import PollRunBook
from connector.store import poll_start
from tests.integration.test_engine import (
    T0,
    Clock,
    ItemJoined,
    Params,
    Store,
    clock,
    inside_fetch,
    make_flow,
    store,
)

__all__ = ["clock", "store"]  # fixtures, used by name

TTL = timedelta(minutes=5)


async def begin(
    conn: asyncpg.Connection,
    owner: str = "w1",
    *,
    connection: str | None = "main",
    take: bool = True,
    now: Any = T0,
) -> poll_start.PollStart:
    return await poll_start.begin(
        conn,
        resource="poll:main",
        owner=owner,
        now=now,
        expires_at=now + TTL,
        flow_name="f1",
        connection_id=connection,
        take=take,
    )


async def lease(conn: asyncpg.Connection) -> tuple[Any, ...] | None:
    row = await conn.fetchrow("SELECT owner, expires_at FROM leases WHERE resource = 'poll:main'")
    return None if row is None else tuple(row)


async def add_connection(conn: asyncpg.Connection, status: str, account: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO connections (id, provider, status, account_fingerprint)"
        " VALUES ('main', 'sendpulse', $1, $2)",
        status,
        account,
    )


async def test_a_flow_never_polled_on_an_unknown_connection_takes_the_lease(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        start = await begin(conn)
        assert start == poll_start.PollStart(
            taken=True, holder=None, connection_status=None, connection_account=None, state=None
        )
        assert await lease(conn) == ("w1", T0 + TTL)


async def test_the_state_row_comes_back_as_stored(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO flow_states (flow_name, connection_id, trigger_type, state_key, cursor,"
            " baseline_done, last_error, account_fingerprint)"
            " VALUES ('f1', 'main', 't', 'k', '{\"position\": 1}', true, 'boom', 'acct')"
        )
        start = await begin(conn)
    assert start.state == {
        "connection_id": "main",
        "trigger_type": "t",
        "state_key": "k",
        "cursor": {"position": 1},
        "baseline_done": True,
        "last_error": "boom",
        "account_fingerprint": "acct",
    }


async def test_a_busy_lease_is_left_to_its_holder_and_the_state_still_read(
    db_pool: asyncpg.Pool,
) -> None:
    async with db_pool.acquire() as conn:
        await begin(conn, "w2")
        await conn.execute(
            "INSERT INTO flow_states (flow_name, trigger_type, state_key) VALUES ('f1', 't', 'k')"
        )
        start = await begin(conn, "w1", now=T0 + timedelta(minutes=1))
        assert (start.taken, start.holder) == (False, "w2")
        assert start.state is not None and start.state["state_key"] == "k"
        assert await lease(conn) == ("w2", T0 + TTL)
        # Lapsed: the next one takes it over.
        later = T0 + TTL + timedelta(seconds=1)
        start = await begin(conn, "w1", now=later)
        assert (start.taken, start.holder) == (True, "w2")
        assert await lease(conn) == ("w1", later + TTL)
        # Its own lease, again: extended.
        again = later + timedelta(minutes=1)
        assert (await begin(conn, "w1", now=again)).taken
        assert await lease(conn) == ("w1", again + TTL)


async def test_a_sibling_holding_the_lease_means_no_lease_write(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        await begin(conn, "w1")
        start = await begin(conn, "w1", take=False, now=T0 + timedelta(minutes=1))
        assert (start.taken, start.holder) == (False, "w1")
        assert await lease(conn) == ("w1", T0 + TTL)


@pytest.mark.parametrize(
    ("status", "taken"), [("active", True), ("needs_reauth", False), ("uninstalled", True)]
)
async def test_each_connection_status_and_its_account_come_back(
    db_pool: asyncpg.Pool, status: str, taken: bool
) -> None:
    async with db_pool.acquire() as conn:
        await add_connection(conn, status, "acct-1")
        start = await begin(conn)
        assert (start.connection_status, start.connection_account) == (status, "acct-1")
        # A connection on hold is not polled, so its lease is not taken.
        assert start.taken is taken
        assert (await lease(conn) is not None) is taken


async def test_a_flow_without_a_connection_starts_too(db_pool: asyncpg.Pool) -> None:
    async with db_pool.acquire() as conn:
        start = await begin(conn, connection=None)
    assert (start.taken, start.connection_status) == (True, None)


# -- through the engine ----------------------------------------------------------------------


class CountingPool:
    """The test database's pool, counting the connections taken from it."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self.acquired = 0

    def acquire(self) -> Any:
        self.acquired += 1
        return self._pool.acquire()

    async def release(self, conn: asyncpg.Connection) -> None:
        await self._pool.release(conn)


async def poll(
    pool: Any, store: Store, clock: Clock, poller: Poller | None = None, **extra: Any
) -> Any:
    return await poll_flow(
        extra.pop("flow", make_flow(ItemJoined)),
        Params(),
        client=store,
        pool=pool,
        worker="w1",
        clock=clock,
        trigger=ItemJoined,
        poller=poller,
        **extra,
    )


async def test_a_connection_on_hold_is_not_polled(
    db_pool: asyncpg.Pool, store: Store, clock: Clock
) -> None:
    async with db_pool.acquire() as conn:
        await add_connection(conn, "needs_reauth")
    counted = CountingPool(db_pool)
    result = await poll(counted, store, clock)
    assert result.status == "paused"
    assert (store.requests_made, counted.acquired) == (0, 1)
    assert await db_pool.fetchval("SELECT count(*) FROM leases") == 0
    assert await db_pool.fetchval("SELECT count(*) FROM poll_runs") == 0


async def test_the_stored_account_is_the_connection_rows(
    db_pool: asyncpg.Pool, store: Store, clock: Clock
) -> None:
    async with db_pool.acquire() as conn:
        await add_connection(conn, "active", "install|sendpulse:app:1")
    store.items["a"] = {"id": "a"}
    assert (await poll(db_pool, store, clock, account=STORED_ACCOUNT)).baseline
    stored = await db_pool.fetchval("SELECT account_fingerprint FROM flow_states")
    assert stored == "install|sendpulse:app:1"
    # The same account next time: no new baseline.
    assert not (await poll(db_pool, store, clock, account=STORED_ACCOUNT)).baseline


async def test_a_commit_gives_the_lease_up_on_its_own_connection(
    db_pool: asyncpg.Pool, store: Store, clock: Clock
) -> None:
    counted = CountingPool(db_pool)
    store.items["a"] = {"id": "a"}
    # The baseline commits: one connection to start, one for the commit and the release.
    assert (await poll(counted, store, clock)).baseline
    assert counted.acquired == 2
    # A quiet poll holds none after its start (its poll_runs row goes to the worker's book):
    # the release takes one.
    counted.acquired = 0
    book = PollRunBook(db_pool, "w1")
    assert (await poll(counted, store, clock, runs=book)).events_created == 0
    assert counted.acquired == 2
    assert await db_pool.fetchval("SELECT count(*) FROM leases") == 0


async def waiting_for_a_row_lock(pool: asyncpg.Pool) -> None:
    """Until a statement waits for a row that another transaction locked."""
    waiting = (
        "SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')"
    )
    for _ in range(3000):
        if await pool.fetchval(waiting):
            return
        await asyncio.sleep(0.01)
    raise AssertionError("no statement ever waited for the locked lease row")


async def test_a_sibling_starting_while_the_lease_is_given_up_takes_it_anew(
    db_pool: asyncpg.Pool, store: Store, clock: Clock
) -> None:
    poller = Poller()
    other = make_flow(ItemJoined).model_copy(update={"name": "f2"})
    other_store = Store()
    await poll(db_pool, store, clock, poller)
    await poll(db_pool, other_store, clock, poller, flow=other)
    store.gate = asyncio.Event()
    first = asyncio.create_task(poll(db_pool, store, clock, poller))
    await inside_fetch(store)
    # f1's poll fails after its fetch and records the failure on a connection of its own,
    # where it then gives the lease up: the lease row, locked elsewhere, holds that release.
    store.crash_after_fetch = RetriableError("the API went away")
    async with db_pool.acquire() as blocker:
        locked = blocker.transaction()
        await locked.start()
        await blocker.execute("SELECT 1 FROM leases WHERE resource = 'poll:main' FOR UPDATE")
        store.gate.set()
        await waiting_for_a_row_lock(db_pool)
        assert poller.holders("poll:main", "w1") == 0
        # f2, of the same connection, starts while f1's release is in flight.
        other_store.items["b"] = {"id": "b"}
        other_store.gate = asyncio.Event()
        second = asyncio.create_task(poll(db_pool, other_store, clock, poller, flow=other))
        await locked.commit()
    assert (await first).status == "failed"
    # f2 took the lease after f1 gave it up, and commits under it.
    await inside_fetch(other_store)
    assert await db_pool.fetchval("SELECT owner FROM leases WHERE resource = 'poll:main'") == "w1"
    other_store.gate.set()
    result = await second
    assert (result.status, result.events_created) == ("ok", 1), result.error
    assert await db_pool.fetchval("SELECT count(*) FROM leases") == 0
