"""Polls and the worker's few database connections: none is held while a poll waits."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path
from typing import Any, ClassVar

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet

from connector.catalog import CATALOG
from connector.config import parse
from connector.daemon import Runtime, Worker
from connector.db.pool import json_codecs
from connector.engine import PollResult, poll_flow
from connector.plugins import ApiClient, SnapshotChange, Trigger
from connector.sandbox.harness import start_sandbox
from connector.snapshot_poll import SNAPSHOT_BATCH
from tests.integration.test_engine import ItemCreated, ItemJoined, Params, Store, make_flow

CONNECTIONS = 6


def flow_file(base_url: str) -> str:
    lines = ["connections:"]
    for n in range(CONNECTIONS):
        lines.append(
            f"  c{n}: {{client_id: client-{n}, client_secret: secret-{n}, base_url: {base_url}}}"
        )
    lines.append("flows:")
    for n in range(CONNECTIONS):
        lines += [
            f"  - name: subscribers-{n}",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            f"      connection: c{n}",
            "      params: {mailing_list_id: 1}",
            "    actions: [{type: log}]",
        ]
    return "\n".join(lines) + "\n"


async def test_polls_filling_the_pool_still_get_their_tokens(database: str, tmp_path: Path) -> None:
    # Two pooled connections for six polls: a poll that held one while its token refresh
    # waited for another would leave every poll waiting for ever.
    async with (
        start_sandbox(rate_limit=None) as sb,
        aiohttp.ClientSession() as http,
        asyncpg.create_pool(database, min_size=1, max_size=2, init=json_codecs) as pool,
    ):
        for n in range(CONNECTIONS):
            sb.add_client(f"client-{n}", f"secret-{n}")
        sb.state.add_book("Newsletter")
        sb.state.add_subscriber(1, "old@example.com", {})
        config = parse(flow_file(sb.base_url), CATALOG, "flows.yaml", env={})
        rt = Runtime(
            pool=pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"test-{socket.gethostname()}",
        )
        worker = Worker(rt, config, port=None)
        await worker.providers.ensure_connections()
        await worker.ownership.tick()
        assert len(worker.ownership.owned) == CONNECTIONS

        polls = asyncio.gather(*(worker._poll(f.name) for f in config.flows))
        await asyncio.wait_for(polls, timeout=60)

        runs = await pool.fetch("SELECT flow_name, error FROM poll_runs ORDER BY flow_name")
        assert [(r["flow_name"], r["error"]) for r in runs] == [
            (f"subscribers-{n}", None) for n in range(CONNECTIONS)
        ]
        tokens = {r.client_id for r in sb.requests() if r.path == "/oauth/access_token"}
        assert tokens == {f"client-{n}" for n in range(CONNECTIONS)}


@pytest.mark.parametrize("trigger", [ItemCreated, ItemJoined], ids=["watermark", "snapshot"])
async def test_a_poll_waiting_for_the_api_holds_no_database_connection(
    database: str, trigger: type[Trigger]
) -> None:
    # A pool of one: while the poll waits for its answer, anyone else can still have it.
    async with asyncpg.create_pool(database, min_size=1, max_size=1, init=json_codecs) as pool:
        store = Store()
        store.items["a"] = {"id": "a", "at": 1.0}
        store.gate = asyncio.Event()
        flow = make_flow(trigger)
        polling = asyncio.create_task(
            poll_flow(flow, Params(), client=store, pool=pool, worker="w1", trigger=trigger)
        )
        try:
            for _ in range(500):
                if store.requests_made or polling.done():
                    break
                await asyncio.sleep(0.01)
            assert store.requests_made == 1
            async with pool.acquire(timeout=10) as conn:
                held = "SELECT count(*) FROM leases WHERE resource = 'poll:main'"
                assert await conn.fetchval(held) == 1
        finally:
            store.gate.set()
        result = await polling
        assert (result.status, result.items_seen) == ("ok", 1), result.error
        assert await pool.fetchval("SELECT count(*) FROM leases") == 0


async def test_a_list_longer_than_one_batch_streams_and_diffs_like_a_short_one(
    database: str,
) -> None:
    async with asyncpg.create_pool(database, min_size=1, max_size=1, init=json_codecs) as pool:
        store = Store()
        for n in range(SNAPSHOT_BATCH + 2):
            store.items[f"k{n}"] = {"id": f"k{n}", "at": 1.0}
        flow = make_flow(ItemJoined)

        async def poll() -> PollResult:
            return await poll_flow(
                flow, Params(), client=store, pool=pool, worker="w1", trigger=ItemJoined
            )

        baseline = await poll()
        assert (baseline.status, baseline.items_seen) == ("ok", SNAPSHOT_BATCH + 2)
        del store.items["k7"]
        store.items["new"] = {"id": "new", "at": 2.0}
        second = await poll()
        assert (second.status, second.items_seen, second.events_created) == (
            "ok",
            SNAPSHOT_BATCH + 2,
            2,
        ), second.error
        async with pool.acquire() as conn:
            keys = await conn.fetch("SELECT item_key FROM events ORDER BY item_key")
            assert [r["item_key"] for r in keys] == ["k7", "new"]
            stored = "SELECT count(*) FROM snapshot_items WHERE flow_name = 'f1'"
            assert await conn.fetchval(stored) == SNAPSHOT_BATCH + 2
            # The pool's one connection carries no rows of the poll's list any more.
            assert await conn.fetchval("SELECT to_regclass('pg_temp.snapshot_incoming')") is None
            assert await conn.fetchval("SELECT count(*) FROM leases") == 0


class ProofStore(Store):
    """A store whose enrichment answer waits until the test lets it go."""

    def __init__(self) -> None:
        super().__init__()
        self.asking = asyncio.Event()
        self.proof = asyncio.Event()


class ItemLeft(ItemJoined):
    key: ClassVar[str] = "test.item_left"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"removed"})
    enriches: ClassVar[bool] = True

    async def enrich(
        self, client: ApiClient, kind: SnapshotChange, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        assert isinstance(client, ProofStore)
        client.asking.set()
        await client.proof.wait()
        return {**payload, "proven": True}


async def test_an_enrichment_call_waits_with_no_database_connection(database: str) -> None:
    async with asyncpg.create_pool(database, min_size=1, max_size=1, init=json_codecs) as pool:
        store = ProofStore()
        store.items = {k: {"id": k, "at": 1.0} for k in ("a", "b")}
        flow = make_flow(ItemLeft)

        async def poll() -> PollResult:
            return await poll_flow(
                flow, Params(), client=store, pool=pool, worker="w1", trigger=ItemLeft
            )

        assert (await poll()).status == "ok"
        del store.items["b"]
        polling = asyncio.create_task(poll())
        try:
            await asyncio.wait_for(store.asking.wait(), 10)
            async with pool.acquire(timeout=10) as conn:
                assert await conn.fetchval("SELECT count(*) FROM leases") == 1
        finally:
            store.proof.set()
        result = await polling
        assert (result.status, result.events_created) == ("ok", 1), result.error
        payload = await pool.fetchval("SELECT payload FROM events WHERE item_key = 'b'")
        assert payload == {"id": "b", "proven": True}
