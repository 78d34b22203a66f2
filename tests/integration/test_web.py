"""The worker's HTTP server: health, readiness and metrics over a real socket."""

from __future__ import annotations

from collections.abc import AsyncIterator
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
import pytest

from connector import metrics
from connector.db import migrate as migrations
from connector.db.pool import json_codecs
from connector.web import WebState, build_app, serve


@pytest.fixture
async def server(db_pool: asyncpg.Pool) -> AsyncIterator[tuple[str, dict[str, bool]]]:
    flags = {"scheduler": True}
    app = build_app(WebState(pool=db_pool, scheduler_running=lambda: flags["scheduler"]))
    runner = await serve(app, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}", flags
    finally:
        await runner.cleanup()


async def test_healthz_and_readyz(server: tuple[str, dict[str, bool]]) -> None:
    base, flags = server
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/healthz") as resp:
            assert resp.status == 200
        async with session.get(f"{base}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 200, body
            assert body["checks"] == {"database": "ok", "migrations": "ok", "scheduler": "ok"}
        flags["scheduler"] = False
        async with session.get(f"{base}/readyz") as resp:
            body = await resp.json()
            assert resp.status == 503
            assert body["checks"]["scheduler"] == "stopped"


async def test_readyz_flips_when_the_database_goes_away(database: str) -> None:
    pool = await asyncpg.create_pool(database, min_size=1, max_size=2, init=json_codecs)
    app = build_app(WebState(pool=pool, scheduler_running=lambda: True))
    runner = await serve(app, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                assert resp.status == 200
            # Refuse new connections and kill the open ones, as an outage would.
            name = urlsplit(database).path.lstrip("/")
            admin = await asyncpg.connect(urlunsplit(urlsplit(database)._replace(path="/postgres")))
            await admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            await admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1", name
            )
            await admin.close()
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                body = await resp.json()
                assert resp.status == 503
                assert body["checks"]["database"].startswith("unavailable")
    finally:
        await runner.cleanup()
        await pool.close()


async def test_metrics_are_exposed_and_move(server: tuple[str, dict[str, bool]]) -> None:
    base, _ = server
    metrics.POLLS.labels(flow="web-test", outcome="ok").inc()
    async with aiohttp.ClientSession() as session:
        async with session.get(f"{base}/metrics") as resp:
            text = await resp.text()
    assert resp.status == 200
    assert 'connector_polls_total{flow="web-test",outcome="ok"} 1.0' in text
    assert "connector_deliveries_total" in text


@pytest.mark.parametrize("applied", ["none", "all but the newest"])
async def test_readyz_is_503_while_migrations_are_pending(
    empty_database: str, applied: str
) -> None:
    pool = await asyncpg.create_pool(empty_database, min_size=1, max_size=2, init=json_codecs)
    if applied != "none":
        # What a worker of the old version sees while a newer one's migration is pending.
        async with pool.acquire() as conn:
            await migrations.migrate(conn)
            await conn.execute(
                "DELETE FROM schema_migrations"
                " WHERE version = (SELECT max(version) FROM schema_migrations)"
            )
    app = build_app(WebState(pool=pool, scheduler_running=lambda: True))
    runner = await serve(app, "127.0.0.1", 0)
    port = runner.addresses[0][1]
    try:
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/readyz") as resp:
                body = await resp.json()
        assert resp.status == 503
        assert body["checks"] == {"database": "ok", "migrations": "pending", "scheduler": "ok"}
    finally:
        await runner.cleanup()
        await pool.close()
