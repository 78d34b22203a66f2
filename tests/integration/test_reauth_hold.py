"""A connection whose credentials are refused holds its SendPulse deliveries; new credentials
and a restart deliver them."""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from connector.catalog import CATALOG
from connector.config import Config, parse
from connector.daemon import Runtime, Worker
from connector.db.pool import json_codecs
from connector.sandbox.harness import Sandbox, start_sandbox

FLOW = "blacklist-new"


def config(sb: Sandbox, client_id: str, client_secret: str) -> Config:
    text = (
        "connections:\n"
        f"  main: {{client_id: {client_id}, client_secret: {client_secret},"
        f" base_url: {sb.base_url}}}\n"
        "flows:\n"
        f"  - name: {FLOW}\n"
        "    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
        "    every: 1h\n"
        "    actions:\n"
        "      - {type: sendpulse.add_to_blacklist, email: '{{ event.email }}'}\n"
        "      - {type: log}\n"
    )
    return parse(text, CATALOG, "flows.yaml", env={})


async def eventually(check: Callable[[], Awaitable[bool]], what: str) -> None:
    for _ in range(600):
        if await check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"gave up after 30 s waiting for {what}")


async def record_event(pool: asyncpg.Pool) -> tuple[uuid.UUID, uuid.UUID]:
    """One event of the flow with its two deliveries, as a poll would have written them."""
    api, log = uuid.uuid4(), uuid.uuid4()
    async with pool.acquire() as conn, conn.transaction():
        await conn.execute(
            "INSERT INTO events (id, flow_name, connection_id, trigger_type, item_key, payload)"
            " VALUES ('e1', $1, 'main', 'sendpulse.subscriber_added', 'spam@example.com', $2)",
            FLOW,
            {"email": "spam@example.com", "mailing_list_id": 1},
        )
        await conn.executemany(
            "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type,"
            " connection_id) VALUES ($1, 'e1', $2, $3, $4, $5)",
            [
                (api, FLOW, 0, "sendpulse.add_to_blacklist", "main"),
                (log, FLOW, 1, "log", None),
            ],
        )
    return api, log


async def test_refused_credentials_hold_deliveries_until_new_ones_and_a_restart(
    database: str, tmp_path: Path
) -> None:
    async with (
        start_sandbox(rate_limit=None) as sb,
        aiohttp.ClientSession() as http,
        asyncpg.create_pool(database, min_size=1, max_size=8, init=json_codecs) as pool,
    ):
        sb.state.add_book("Newsletter")
        rt = Runtime(
            pool=pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"reauth-{socket.gethostname()}",
        )

        async def state_of(did: uuid.UUID) -> str:
            return str(await pool.fetchval("SELECT state FROM deliveries WHERE id = $1", did))

        # The first run: credentials the account does not know (revoked, say).
        first = Worker(rt, config(sb, "revoked-client", "revoked-secret"), port=None)
        running = asyncio.create_task(first.run())
        try:
            await first.providers.ensure_connections()
            api, log = await record_event(pool)

            async def refused() -> bool:
                status = await pool.fetchval("SELECT status FROM connections WHERE id = 'main'")
                return (
                    status == "needs_reauth"
                    and await state_of(log) == "delivered"
                    and await state_of(api) != "running"
                )

            await eventually(refused, "the connection to need reauth and the log action to run")
            assert first.dispatcher is not None
            # Held, not dead: still pending, and no claim takes it while the connection
            # needs reauth (it would only meet the same refusal).
            assert await state_of(api) == "pending"
            assert await first.dispatcher.claim(10) == []
        finally:
            first.stop.set()
            await asyncio.wait_for(running, 60)
        held = await pool.fetchrow(
            "SELECT state, attempt, last_error FROM deliveries WHERE id = $1", api
        )
        assert held is not None
        assert held["state"] == "pending"
        assert held["attempt"] <= 1
        assert held["attempt"] == 0 or "held until the connection is active" in held["last_error"]
        assert sb.state.blacklist == {}

        # New credentials in the flow file, and a restart: the held delivery goes out.
        sb.add_client("new-client", "new-secret")
        second = Worker(rt, config(sb, "new-client", "new-secret"), port=None)
        running = asyncio.create_task(second.run())
        try:

            async def delivered() -> bool:
                return await state_of(api) == "delivered"

            await eventually(delivered, "the held delivery to go out with the new credentials")
        finally:
            second.stop.set()
            await asyncio.wait_for(running, 60)
        assert await pool.fetchval("SELECT status FROM connections WHERE id = 'main'") == "active"
        assert list(sb.state.blacklist) == ["spam@example.com"]
        outcomes = await pool.fetch(
            "SELECT outcome FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", api
        )
        assert [r["outcome"] for r in outcomes][-1] == "delivered"
        assert "dead" not in [r["outcome"] for r in outcomes]
