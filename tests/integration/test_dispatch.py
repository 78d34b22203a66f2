"""The dispatcher on a real Postgres with a local receiver: claims, retries, leases, order."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import timedelta

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from connector.config import Config
from connector.delivery_retry import JITTER
from connector.dispatch import Dispatcher
from connector.egress import EgressPolicy, guarded_session
from tests.integration.dispatch_support import (
    SECRET,
    T0,
    FakeClock,
    Received,
    attempts,
    delivery,
    flow_file,
    insert_event,
    receiver,
    webhook_flow,
)

SCHEDULE = [5, 300, 1800, 7200, 18000, 36000, 36000]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with guarded_session(EgressPolicy(["127.0.0.1/32"])) as session:
        yield session


def dispatcher(
    pool: asyncpg.Pool, config: Config, http: aiohttp.ClientSession, clock: FakeClock, **kw: object
) -> Dispatcher:
    return Dispatcher(pool, config, http=http, clock=clock, worker_id="w1", **kw)  # type: ignore[arg-type]


def independent_verify(received: Received) -> bool:
    """Standard Webhooks, written from the spec without our signing module."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    msg_id = received.headers["webhook-id"]
    ts = received.headers["webhook-timestamp"]
    content = f"{msg_id}.{ts}.".encode() + received.body
    expected = base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()
    offered = [s.split(",", 1)[1] for s in received.headers["webhook-signature"].split()]
    return any(hmac.compare_digest(expected, o) for o in offered)


async def test_delivers_signed_json_records_attempt_and_logs(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        config = flow_file(webhook_flow("welcome", rx.url + "/hook"))
        clock = FakeClock()
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "welcome", "ev-1", {"email": "x@y.z"})
        with capture_logs() as logs:
            assert await dispatcher(db_pool, config, http, clock).run_once() == 1
        assert len(rx.received) == 1
        got = rx.received[0]
        assert got.path == "/hook"
        assert got.headers["webhook-id"] == str(did)
        assert got.headers["webhook-timestamp"] == str(int(T0.timestamp()))
        assert independent_verify(got)
        body = json.loads(got.body)
        assert body["data"] == {"email": "x@y.z"}
        assert body["event_id"] == "ev-1" and body["type"] == "sendpulse.subscriber_added"
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
            tries = await attempts(conn, did)
        assert row["state"] == "delivered" and row["attempt"] == 1
        assert row["delivered_at"] == T0 and row["lease_owner"] is None
        assert [(a["attempt"], a["outcome"], a["status_code"]) for a in tries] == [
            (1, "delivered", 200)
        ]
        assert tries[0]["started_at"] == T0 and tries[0]["detail"] == "ok"
    [line] = [entry for entry in logs if entry["event"] == "trigger_delivered"]
    assert line["flow"] == "welcome" and line["event_id"] == "ev-1"
    assert line["item_key"] == "x@y.z" and line["action"] == "webhook"
    assert line["attempt"] == 1 and isinstance(line["duration_ms"], int)
    assert line["summary"] == f"POST {rx.url} → 200"


async def test_retry_schedule_then_dead_with_the_same_webhook_id(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        rx.respond = lambda _r: web.Response(status=503, text="down")
        config = flow_file(webhook_flow("hooks", rx.url))
        clock = FakeClock()
        worker = dispatcher(db_pool, config, http, clock)
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "hooks", "ev-r", {"email": "r@y.z"})
        with capture_logs() as logs:
            for attempt, wait in enumerate([*SCHEDULE, None], start=1):
                assert await worker.run_once() == 1
                async with db_pool.acquire() as conn:
                    row = await delivery(conn, did)
                assert row["attempt"] == attempt
                if wait is None:
                    assert row["state"] == "dead"
                    break
                assert row["state"] == "pending"
                delay = (row["next_attempt_at"] - clock.now).total_seconds()
                assert wait * (1 - JITTER) <= delay <= wait * (1 + JITTER)
                # Not due yet: nothing is claimed a moment before.
                clock.now = row["next_attempt_at"] - timedelta(milliseconds=1)
                assert await worker.run_once() == 0
                clock.now = row["next_attempt_at"]
        async with db_pool.acquire() as conn:
            tries = await attempts(conn, did)
        assert [a["outcome"] for a in tries] == ["retry"] * 7 + ["dead"]
        assert all(a["status_code"] == 503 for a in tries)
        assert len(rx.received) == 8
        assert set(rx.ids()) == {str(did)}
        # A new timestamp per attempt, the same id: receivers can dedupe.
        assert len({r.headers["webhook-timestamp"] for r in rx.received}) == 8
        assert all(independent_verify(r) for r in rx.received)
    failed = [e for e in logs if e["event"] == "delivery_failed"]
    assert len(failed) == 7 and all("next_attempt_at" in e for e in failed)
    [dead] = [e for e in logs if e["event"] == "delivery_dead"]
    assert dead["attempt"] == 8 and "gave up after 8 attempts" in dead["error"]


async def test_receiver_down_then_up_loses_nothing(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        up = False
        rx.respond = lambda _r: web.Response(status=200 if up else 502)
        config = flow_file(webhook_flow("hooks", rx.url, concurrency=50))
        clock = FakeClock()
        worker = dispatcher(db_pool, config, http, clock)
        ids = []
        async with db_pool.acquire() as conn:
            for n in range(20):
                ids += await insert_event(conn, "hooks", f"ev-{n}", {"email": f"u{n}@y.z"})
        assert await worker.run_once() == 20
        clock.advance(6)
        assert await worker.run_once() == 20
        up = True
        clock.advance(timedelta(minutes=6))
        assert await worker.run_once() == 20
        assert await worker.run_once() == 0
        async with db_pool.acquire() as conn:
            states = await conn.fetch("SELECT state, attempt FROM deliveries")
        assert {(r["state"], r["attempt"]) for r in states} == {("delivered", 3)}
        by_id: dict[str, int] = {}
        for got in rx.received:
            by_id[got.headers["webhook-id"]] = by_id.get(got.headers["webhook-id"], 0) + 1
        assert by_id == {str(i): 3 for i in ids}


@pytest.mark.parametrize(
    ("status", "headers", "state", "next_at_least"),
    [
        (410, {}, "dead", None),
        (429, {"Retry-After": "120"}, "pending", 120),
        (503, {"Retry-After": "Sun, 01 Mar 2026 13:00:00 GMT"}, "pending", 3600),
        (302, {"Location": "http://127.0.0.1:1/inside"}, "pending", 4.5),
        (404, {}, "pending", 4.5),
    ],
)
async def test_status_semantics(
    db_pool: asyncpg.Pool,
    http: aiohttp.ClientSession,
    status: int,
    headers: dict[str, str],
    state: str,
    next_at_least: float | None,
) -> None:
    async with receiver() as rx:
        rx.respond = lambda _r: web.Response(status=status, headers=headers, text="nope")
        config = flow_file(webhook_flow("hooks", rx.url))
        clock = FakeClock()
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "hooks", "ev-s", {"email": "s@y.z"})
        await dispatcher(db_pool, config, http, clock).run_once()
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
            [attempt] = await attempts(conn, did)
        assert row["state"] == state
        assert attempt["status_code"] == status and attempt["detail"] == "nope"
        assert len(rx.received) == 1  # a redirect is not followed
        if next_at_least is not None:
            wait = (row["next_attempt_at"] - T0).total_seconds()
            assert wait >= next_at_least
        if status == 302:
            assert "redirects are not followed" in row["last_error"]


async def test_timeout_counts_as_a_failure(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    release = asyncio.Event()

    async def hang(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response()

    app = web.Application()
    app.router.add_post("/", hang)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
    try:
        config = flow_file(
            webhook_flow("slow", url, **{}).replace(
                "      secret:", "      timeout: 1s\n      secret:"
            )
        )
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "slow", "ev-t", {"email": "t@y.z"})
        await dispatcher(db_pool, config, http, FakeClock()).run_once()
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
        assert row["state"] == "pending" and "timed out after 1s" in row["last_error"]
    finally:
        release.set()
        await runner.cleanup()


async def test_expired_lease_is_rescued_and_the_zombie_cannot_finish(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        config = flow_file(webhook_flow("hooks", rx.url))
        clock = FakeClock()
        zombie = Dispatcher(db_pool, config, http=http, clock=clock, worker_id="zombie")
        rescuer = Dispatcher(db_pool, config, http=http, clock=clock, worker_id="rescuer")
        async with db_pool.acquire() as conn:
            [did] = await insert_event(conn, "hooks", "ev-z", {"email": "z@y.z"})
        [claimed] = await zombie.claim(10)
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
        assert row["state"] == "running" and row["lease_owner"] == "zombie"
        # Within the lease nobody else can take it.
        assert await rescuer.run_once() == 0
        clock.advance(zombie.lease + timedelta(seconds=1))
        with capture_logs() as logs:
            assert await rescuer.run_once() == 1
            await zombie.deliver(claimed)  # wakes up late and tries to finish attempt 1
        async with db_pool.acquire() as conn:
            row = await delivery(conn, did)
            tries = await attempts(conn, did)
        assert row["state"] == "delivered" and row["attempt"] == 2
        assert [(a["attempt"], a["outcome"]) for a in tries] == [(1, "retry"), (2, "delivered")]
        assert "lease expired" in tries[0]["detail"]
        assert [e["event"] for e in logs if e["event"].startswith("delivery_lease")] == [
            "delivery_lease_expired",
            "delivery_lease_lost",
        ]
        # Both attempts reached the receiver, under one id: at-least-once, dedupable.
        assert rx.ids() == [str(did), str(did)]


async def test_ordered_flow_runs_one_at_a_time_in_event_order(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        failures = {"ev-0": 1}

        def respond(got: Received) -> web.Response:
            event = json.loads(got.body)["event_id"]
            if failures.get(event, 0) > 0:
                failures[event] -= 1
                return web.Response(status=500)
            return web.Response()

        rx.respond = respond
        config = flow_file(webhook_flow("ordered", rx.url, ordered=True))
        clock = FakeClock()
        worker = dispatcher(db_pool, config, http, clock)
        async with db_pool.acquire() as conn:
            for n in range(4):
                await insert_event(conn, "ordered", f"ev-{n}", {"email": f"o{n}@y.z"})
        assert await worker.run_once() == 1  # ev-0 fails
        # The head is waiting for its retry: nothing behind it may overtake.
        assert await worker.run_once() == 0
        clock.advance(10)
        for _ in range(4):
            assert await worker.run_once() == 1
        assert await worker.run_once() == 0
        order = [json.loads(r.body)["event_id"] for r in rx.received]
        assert order == ["ev-0", "ev-0", "ev-1", "ev-2", "ev-3"]


async def test_concurrency_limit_per_flow(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        config = flow_file(
            webhook_flow("narrow", rx.url, concurrency=2) + webhook_flow("wide", rx.url)
        )
        worker = dispatcher(db_pool, config, http, FakeClock())
        async with db_pool.acquire() as conn:
            for n in range(5):
                await insert_event(conn, "narrow", f"n-{n}", {"email": f"n{n}@y.z"})
                await insert_event(conn, "wide", f"w-{n}", {"email": f"w{n}@y.z"})
        claimed = await worker.claim(100)
        flows = [c.event.flow for c in claimed]
        assert flows.count("narrow") == 2 and flows.count("wide") == 5
        # While two run, the narrow flow has no room left.
        assert [c.event.flow for c in await worker.claim(100)] == []
        await asyncio.gather(*(worker.deliver(c) for c in claimed))
        assert [c.event.flow for c in await worker.claim(100)] == ["narrow", "narrow"]


async def test_run_loop_delivers_until_stopped(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        config = flow_file(webhook_flow("loop", rx.url))
        worker = Dispatcher(db_pool, config, http=http, worker_id="loop", idle_wait=0.05)
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        async with db_pool.acquire() as conn:
            for n in range(30):
                await insert_event(
                    conn, "loop", f"l-{n}", {"email": f"l{n}@y.z"}, at=T0 - timedelta(days=1)
                )
        for _ in range(200):
            if len(rx.received) >= 30:
                break
            await asyncio.sleep(0.05)
        stop.set()
        await asyncio.wait_for(task, 10)
        assert len(set(rx.ids())) == 30
        async with db_pool.acquire() as conn:
            assert (
                await conn.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'") == 30
            )


async def test_no_secret_is_stored_or_logged(
    db_pool: asyncpg.Pool, http: aiohttp.ClientSession
) -> None:
    async with receiver() as rx:
        rx.respond = lambda got: web.Response(status=500, text=got.headers["webhook-signature"])
        config = flow_file(webhook_flow("hooks", rx.url))
        async with db_pool.acquire() as conn:
            await insert_event(conn, "hooks", "ev-x", {"email": "x@y.z"})
        with capture_logs() as logs:
            await dispatcher(db_pool, config, http, FakeClock()).run_once()
        async with db_pool.acquire() as conn:
            dump = json.dumps(
                [dict(r) for r in await conn.fetch("SELECT * FROM delivery_attempts")]
                + [dict(r) for r in await conn.fetch("SELECT * FROM deliveries")],
                default=str,
            )
        secret_body = SECRET.removeprefix("whsec_")
        assert secret_body not in dump and secret_body not in json.dumps(logs, default=str)
