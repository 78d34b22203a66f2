"""`connector test FLOW [--deliver]` as a process: one poll that writes nothing."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from connector.sandbox.harness import Sandbox
from connector.webhook_signing import generate_secret, verify
from tests.e2e.conftest import SECRET_KEY, Daemon, cli_env, eventually, run_cli, wait_exit
from tests.e2e.conftest import write_flows as write_flow_file

SECRET = generate_secret()


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[list[tuple[dict[str, str], dict[str, Any]]], str]]:
    got: list[tuple[dict[str, str], dict[str, Any]]] = []

    async def handle(request: web.Request) -> web.Response:
        body = await request.read()
        verify([SECRET], request.headers, body, now=datetime.now(UTC))
        got.append((dict(request.headers), json.loads(body)))
        return web.json_response({"ok": True})

    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield got, f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


def env(database: str, tmp_path: Path) -> dict[str, str]:
    return cli_env(
        DATABASE_URL=database,
        CONNECTOR_SECRET_KEY=SECRET_KEY,
        CONNECTOR_HOME=str(tmp_path / "home"),
        PORT="0",
    )


async def try_flow(database: str, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return await asyncio.to_thread(run_cli, "test", *args, env=env(database, tmp_path))


async def counts(dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(dsn)
    try:
        return {
            table: await conn.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608 - fixed names
            for table in ("flow_states", "events", "deliveries", "snapshot_items", "poll_runs")
        } | {"cursor": await conn.fetchval("SELECT cursor::text FROM flow_states")}
    finally:
        await conn.close()


def lines(result: subprocess.CompletedProcess[str]) -> list[dict[str, Any]]:
    assert result.returncode == 0, result.stdout + result.stderr
    return [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]


async def test_samples_then_new_items_then_a_test_delivery_and_nothing_written(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[list[tuple[dict[str, str], dict[str, Any]]], str],
) -> None:
    got, url = receiver
    book = sb.state.add_book("Trial").id
    for n in range(5):
        sb.state.add_subscriber(book, f"old{n}@example.com")
    config = write_flow_file(
        tmp_path / "flows.yaml", sb, url, {"news": ("c1", book)}, secret=SECRET
    )
    config_arg = ("--config", str(config))

    # Never polled: nothing can be "new", so the most recent few are shown as samples.
    first = lines(await try_flow(database, tmp_path, "news", *config_arg, "--json"))
    assert [line["sample"] for line in first] == [True, True, True]
    assert {line["body"]["data"]["email"] for line in first} <= {
        f"old{n}@example.com" for n in range(5)
    }
    assert all(line["body"]["type"] == "sendpulse.subscriber_added" for line in first)
    empty = await counts(database)
    assert (empty["flow_states"], empty["events"], empty["poll_runs"]) == (0, 0, 0)
    prose = await try_flow(database, tmp_path, "news", *config_arg, "--samples", "2")
    assert prose.returncode == 0
    assert "as SAMPLES" in prose.stdout and prose.stdout.count("--- sample") == 2

    # A worker takes the baseline, then stops; a new subscriber is then the one new item.
    worker = Daemon(["run", *config_arg], env(database, tmp_path), tmp_path / "worker.log")
    daemons.append(worker)

    async def baseline() -> bool:
        return (await counts(database))["flow_states"] == 1

    await eventually(baseline, "the worker's baseline", 30)
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 20) == 0
    before = await counts(database)
    sb.state.add_subscriber(book, "fresh@example.com")

    found = lines(await try_flow(database, tmp_path, "news", *config_arg, "--json"))
    assert [(line["sample"], line["body"]["data"]["email"]) for line in found] == [
        (False, "fresh@example.com")
    ]
    assert await counts(database) == before

    delivered = lines(
        await try_flow(database, tmp_path, "news", *config_arg, "--json", "--deliver")
    )
    assert delivered[-1] == {
        "test_delivery": {
            "action": "webhook",
            "outcome": "delivered",
            "summary": delivered[-1]["test_delivery"]["summary"],
        }
    }
    assert len(got) == 1
    headers, body = got[0]
    assert headers["webhook-test"] == "true"
    assert body["test"] is True and body["data"]["email"] == "fresh@example.com"
    # The next real poll still finds the subscriber new: nothing moved, no row was kept.
    assert await counts(database) == before


async def test_an_unknown_flow_or_a_failing_trigger_says_so(
    database: str, tmp_path: Path, sb: Sandbox
) -> None:
    config = write_flow_file(
        tmp_path / "flows.yaml",
        sb,
        "http://127.0.0.1:9/hook",
        {"lost": ("c1", 4242)},
        secret=SECRET,
    )
    unknown = await try_flow(database, tmp_path, "nope", "--config", str(config))
    assert unknown.returncode == 2
    assert "no flow 'nope'" in unknown.stderr and "lost" in unknown.stderr
    failing = await try_flow(database, tmp_path, "lost", "--config", str(config))
    assert failing.returncode == 1
    assert "Book not found" in failing.stdout
    assert (await counts(database))["poll_runs"] == 0
