"""Stopping a worker: `--drain` bounds the whole shutdown, polls and deliveries together."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiohttp
import asyncpg
from aiohttp import web
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.catalog import CATALOG
from connector.config import parse
from connector.daemon import Runtime, Worker
from connector.db.pool import json_codecs
from connector.sandbox.harness import start_sandbox
from tests.integration.dispatch_support import SECRET, insert_event

DRAIN = 3.0


@asynccontextmanager
async def hanging_receiver(arrived: asyncio.Event) -> AsyncIterator[str]:
    """A webhook receiver that takes every request and never answers it."""
    never = asyncio.Event()

    async def handle(_request: web.Request) -> web.Response:
        arrived.set()
        await never.wait()
        return web.Response(text="too late")

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


async def wait_for(condition: asyncio.Event, what: str) -> None:
    try:
        await asyncio.wait_for(condition.wait(), 60)
    except TimeoutError:
        raise AssertionError(f"gave up after 60 s waiting for {what}") from None


async def test_drain_bounds_polls_and_deliveries_together(database: str, tmp_path: Path) -> None:
    delivery_arrived = asyncio.Event()
    poll_arrived = asyncio.Event()
    async with (
        start_sandbox(rate_limit=None) as sb,
        hanging_receiver(delivery_arrived) as hook,
        aiohttp.ClientSession() as http,
        asyncpg.create_pool(database, min_size=1, max_size=6, init=json_codecs) as pool,
    ):
        sb.state.add_book("Newsletter")
        # Every poll of the list hangs for longer than the drain; so does the receiver.
        sb.faults.script("hang", 100, path_prefix="/addressbooks/1/emails", hang_seconds=600)

        text = (
            "connections:\n"
            f"  main: {{client_id: {sb.client_id}, client_secret: {sb.client_secret},"
            f" base_url: {sb.base_url}}}\n"
            "egress: {allow_networks: [127.0.0.1/32]}\n"
            "flows:\n"
            "  - name: hooked\n"
            "    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
            "    every: 10s\n"
            f"    actions: [{{type: webhook, url: '{hook}', secret: {SECRET}}}]\n"
        )
        config = parse(text, CATALOG, "flows.yaml", env={})
        async with pool.acquire() as conn:
            [did] = await insert_event(conn, "hooked", "e1", {"email": "a@example.com"})
        rt = Runtime(
            pool=pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"drain-{socket.gethostname()}",
        )
        worker = Worker(rt, config, port=None, drain=DRAIN)

        async def poll_started() -> None:
            # A hanging request is recorded only when it ends; its fault is taken at once.
            while sb.faults.pending == 100:  # noqa: ASYNC110 - the sandbox has no hook for it
                await asyncio.sleep(0.05)
            poll_arrived.set()

        watcher = asyncio.create_task(poll_started())
        with capture_logs() as logs:
            running = asyncio.create_task(worker.run())
            try:
                await wait_for(delivery_arrived, "the delivery to reach the receiver")
                await wait_for(poll_arrived, "the first poll to reach the sandbox")
                started = time.monotonic()
                worker.stop.set()
                code = await asyncio.wait_for(running, timeout=10 * DRAIN)
                took = time.monotonic() - started
            finally:
                watcher.cancel()
                if not running.done():
                    running.cancel()
        assert code == 0
        names = [entry["event"] for entry in logs]
        assert "polls_cancelled_at_shutdown" in names, "\n".join(map(str, logs))
        assert "deliveries_cancelled_at_shutdown" in names
        # Both waited, side by side: one drain, not one after the other (2 x DRAIN before).
        assert DRAIN - 0.1 <= took < 1.8 * DRAIN, took
        # Nothing was lost: the cancelled delivery is still to be delivered, the poll
        # committed nothing and let go of its lease.
        state = await pool.fetchval("SELECT state FROM deliveries WHERE id = $1", did)
        assert state in ("pending", "running")
        assert await pool.fetchval("SELECT count(*) FROM poll_runs") == 0
        assert await pool.fetchval("SELECT count(*) FROM leases WHERE resource LIKE 'poll:%'") == 0
