"""A claimed batch runs side by side under one deadline, and each finish is written on its
own: one slow attempt holds back neither the others' finishes nor their slots."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any, ClassVar

import asyncpg
from structlog.testing import capture_logs

from connector.dispatch import Dispatcher
from connector.plugins import Action, ActionContext, ActionResult, NoParams, StoredEvent
from tests.integration.dispatch_support import (
    FakeClock,
    attempts,
    delivery,
    flow_file,
    insert_event,
    standing_in,
)


class SlowOnes(Action[NoParams]):
    """Stands in for `log`: an event whose item key starts with "slow" waits for `release`."""

    key: ClassVar[str] = "log"
    summary = "slow for some"
    release: ClassVar[asyncio.Event]
    started: ClassVar[asyncio.Event]

    async def run(self, ctx: ActionContext, event: StoredEvent, params: NoParams) -> ActionResult:
        if event.item_key.startswith("slow"):
            SlowOnes.started.set()
            await SlowOnes.release.wait()
        return ActionResult(summary=f"done {event.item_key}")


FLOW = """\
- name: mixed
  trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}
  retry_schedule: [5s, 5m]
  actions: [{type: log}]
"""


def worker(db_pool: asyncpg.Pool, **options: Any) -> Dispatcher:
    SlowOnes.release = asyncio.Event()
    SlowOnes.started = asyncio.Event()
    return Dispatcher(
        db_pool,
        flow_file(FLOW, catalog=standing_in(SlowOnes)),
        http=None,
        clock=FakeClock(),
        worker_id="w1",
        **options,
    )


async def states(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch(
        "SELECT e.item_key, d.state FROM deliveries d JOIN events e ON e.id = d.event_id"
    )
    return {r["item_key"]: r["state"] for r in rows}


async def test_the_deadline_cuts_off_only_the_attempts_still_running(
    db_pool: asyncpg.Pool,
) -> None:
    # A 2 s lease leaves a budget of 1 s; the slow one is never released.
    dispatcher = worker(db_pool, lease=timedelta(seconds=2))
    async with db_pool.acquire() as conn:
        [slow] = await insert_event(conn, "mixed", "e-slow", {}, actions=["log"], item_key="slow")
        fast = [
            (await insert_event(conn, "mixed", f"e-{n}", {}, actions=["log"], item_key=f"f{n}"))[0]
            for n in range(3)
        ]
    assert await asyncio.wait_for(dispatcher.run_once(), 30) == 4
    async with db_pool.acquire() as conn:
        assert await states(conn) == {
            "slow": "pending",
            "f0": "delivered",
            "f1": "delivered",
            "f2": "delivered",
        }
        row = await delivery(conn, slow)
        assert row["last_error"] == "the action took longer than 1s"
        [tried] = await attempts(conn, slow)
        assert tried["outcome"] == "retry"
        for did in fast:
            assert [a["outcome"] for a in await attempts(conn, did)] == ["delivered"]


async def test_a_finish_is_written_while_others_of_its_batch_still_run(
    db_pool: asyncpg.Pool,
) -> None:
    dispatcher = worker(db_pool, idle_wait=0.05)
    async with db_pool.acquire() as conn:
        await insert_event(conn, "mixed", "e-slow", {}, actions=["log"], item_key="slow")
        await insert_event(conn, "mixed", "e-fast", {}, actions=["log"], item_key="fast")
    stop = asyncio.Event()
    task = asyncio.create_task(dispatcher.run(stop))
    try:
        await asyncio.wait_for(SlowOnes.started.wait(), 30)
        for _ in range(600):
            async with db_pool.acquire() as conn:
                seen = await states(conn)
            if seen["fast"] == "delivered":
                break
            await asyncio.sleep(0.05)
        # The fast one is recorded while the slow one of the same claim still runs.
        assert seen == {"fast": "delivered", "slow": "running"}
        SlowOnes.release.set()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
    async with db_pool.acquire() as conn:
        assert await states(conn) == {"fast": "delivered", "slow": "delivered"}


async def test_a_finish_that_cannot_be_written_leaves_the_row_to_the_rescuer(
    db_pool: asyncpg.Pool, database: str
) -> None:
    dispatcher = worker(db_pool)
    async with db_pool.acquire() as conn:
        [did] = await insert_event(conn, "mixed", "e-1", {}, actions=["log"], item_key="f1")
    [claimed] = await dispatcher.claim(10)
    # The database goes away between the claim and the finish.
    gone = await asyncpg.create_pool(database, min_size=0, max_size=1)
    await gone.close()
    dispatcher._finisher.pool = gone
    with capture_logs() as logs:
        await asyncio.wait_for(dispatcher.deliver(claimed), 30)
    assert [e["event"] for e in logs if e["log_level"] == "error"] == ["delivery_finish_failed"]
    assert "trigger_delivered" not in [e["event"] for e in logs]
    async with db_pool.acquire() as conn:
        assert (await delivery(conn, did))["state"] == "running"
        assert await attempts(conn, did) == []
    # Its slot is free again: the next claim may take as many as before.
    assert dispatcher._in_flight == 0


async def test_cancelling_a_batch_stops_its_attempts_and_writes_nothing(
    db_pool: asyncpg.Pool,
) -> None:
    dispatcher = worker(db_pool)
    async with db_pool.acquire() as conn:
        [did] = await insert_event(conn, "mixed", "e-slow", {}, actions=["log"], item_key="slow")
    delivering = asyncio.create_task(dispatcher.run_once())
    await asyncio.wait_for(SlowOnes.started.wait(), 30)
    delivering.cancel()
    try:
        await delivering
    except asyncio.CancelledError:
        pass
    assert dispatcher._in_flight == 0 and not dispatcher._batches
    async with db_pool.acquire() as conn:
        assert (await delivery(conn, did))["state"] == "running"
        assert await attempts(conn, did) == []
