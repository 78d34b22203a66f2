"""Replay of dead deliveries: same id, a fresh schedule, never a delivered one again."""

from __future__ import annotations

import asyncpg
import pytest
from aiohttp import web

from connector.delivery_log import (
    AmbiguousId,
    NothingToReplay,
    list_deliveries,
    replay_dead,
    replay_delivery,
    show_event,
)
from connector.delivery_retry import total_window
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, guarded_session
from tests.integration.dispatch_support import (
    T0,
    FakeClock,
    attempts,
    delivery,
    flow_file,
    insert_event,
    receiver,
    webhook_flow,
)


async def test_dead_then_replayed_reaches_the_receiver_under_the_same_id(
    db_pool: asyncpg.Pool,
) -> None:
    async with receiver() as rx, guarded_session(EgressPolicy(["127.0.0.1/32"])) as http:
        up = False
        rx.respond = lambda _r: web.Response(status=200 if up else 500)
        config = flow_file(webhook_flow("hooks", rx.url))
        clock = FakeClock()
        start = clock.now
        worker = Dispatcher(db_pool, config, http=http, clock=clock, worker_id="w")
        async with db_pool.acquire() as conn:
            [dead_id] = await insert_event(conn, "hooks", "ev-dead", {"email": "d@y.z"})
            [ok_id] = await insert_event(conn, "hooks", "ev-ok", {"email": "o@y.z"})
        # The receiver is down for longer than the whole schedule: both end dead.
        while True:
            async with db_pool.acquire() as conn:
                due = await conn.fetchval(
                    "SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'"
                )
            if due is None:
                break
            clock.now = max(clock.now, due)
            await worker.run_once()
        window = clock.now - start
        schedule = config.flows[0].retry_schedule
        assert window >= total_window(schedule) * 0.9
        async with db_pool.acquire() as conn:
            assert (await delivery(conn, ok_id))["state"] == "dead"
            assert (await delivery(conn, dead_id))["attempt"] == 8
        up = True
        async with db_pool.acquire() as conn:
            replayed = await replay_delivery(conn, str(dead_id), clock.now)
            assert replayed.id == str(dead_id)
            with pytest.raises(NothingToReplay, match="only dead ones replay"):
                await replay_delivery(conn, str(dead_id), clock.now)
        assert await worker.run_once() == 1
        async with db_pool.acquire() as conn:
            row = await delivery(conn, dead_id)
            tries = await attempts(conn, dead_id)
            shown = await show_event(conn, "ev-dead")
        assert row["state"] == "delivered" and row["attempt"] == 9
        assert [a["attempt"] for a in tries] == list(range(1, 10))
        assert shown is not None and len(shown["deliveries"][0]["attempts"]) == 9
        ids = [r.headers["webhook-id"] for r in rx.received if "ev-dead" in r.body.decode()]
        assert len(ids) == 9 and set(ids) == {str(dead_id)}

        # The rest of the flow's dead ones; the delivered one is not touched again.
        async with db_pool.acquire() as conn:
            again = await replay_dead(conn, "hooks", clock.now)
            assert [r.id for r in again] == [str(ok_id)]
            with pytest.raises(NothingToReplay, match="already delivered"):
                await replay_delivery(conn, str(dead_id), clock.now)
        assert await worker.run_once() == 1
        assert await worker.run_once() == 0
        async with db_pool.acquire() as conn:
            states = {r["state"] for r in await conn.fetch("SELECT state FROM deliveries")}
        assert states == {"delivered"}


async def test_replayed_delivery_gets_a_fresh_schedule(db_pool: asyncpg.Pool) -> None:
    async with receiver() as rx, guarded_session(EgressPolicy(["127.0.0.1/32"])) as http:
        rx.respond = lambda _r: web.Response(status=503)
        config = flow_file(webhook_flow("short", rx.url, retry_schedule=["1s"]))
        clock = FakeClock()
        worker = Dispatcher(db_pool, config, http=http, clock=clock, worker_id="w")
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "short", "ev-1", {"email": "a@y.z"})
        await worker.run_once()
        clock.advance(2)
        await worker.run_once()
        async with db_pool.acquire() as conn:
            assert (await delivery(conn, did))["state"] == "dead"
            await replay_dead(conn, "short", clock.now)
        await worker.run_once()
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
        # Attempt 3 failed: it is the first of the fresh schedule, so one retry remains.
        assert row["state"] == "pending" and row["attempt"] == 3
        clock.advance(2)
        await worker.run_once()
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
        assert row["state"] == "dead" and row["attempt"] == 4


async def test_ids_are_taken_by_unique_prefix_and_an_ambiguous_one_is_named(
    db_pool: asyncpg.Pool,
) -> None:
    first, second = "762ac0de" + "1" * 56, "762ac0de" + "2" * 56
    async with db_pool.acquire() as conn:
        [first_delivery] = await insert_event(conn, "hooks", first, {"email": "a@y.z"})
        await insert_event(conn, "hooks", second, {"email": "b@y.z"})
        await conn.execute("UPDATE deliveries SET state = 'dead'")
        # 16 characters, as `connector deliveries` shows them: unique, so it is the event.
        shown = await show_event(conn, first[:16])
        assert shown is not None and shown["id"] == first
        listed = await list_deliveries(conn, event_id=second[:9])
        assert [row["event_id"] for row in listed] == [second]
        with pytest.raises(AmbiguousId, match="'762ac0de' is ambiguous"):
            await show_event(conn, "762ac0de")
        assert await show_event(conn, "762ac0df") is None
        # Below 8 characters a prefix is not taken at all: only an exact id matches.
        assert await show_event(conn, first[:7]) is None
        replayed = await replay_delivery(conn, str(first_delivery)[:8], T0)
        assert replayed.id == str(first_delivery)
