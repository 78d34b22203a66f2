"""Reloading the flow file (what SIGHUP does): removals, new baselines, failures, races."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.catalog import CATALOG
from connector.config import load_file
from connector.daemon import Runtime, Worker
from connector.db.pool import json_codecs
from connector.sandbox.harness import Sandbox, start_sandbox


def flow_file(sb: Sandbox, flows: dict[str, tuple[int, str]]) -> str:
    """Subscriber flows by name: (mailing list id, poll interval)."""
    lines = [
        "connections:",
        f"  main: {{client_id: {sb.client_id}, client_secret: {sb.client_secret},"
        f" base_url: {sb.base_url}}}",
        "flows:",
    ]
    for name, (list_id, every) in flows.items():
        lines += [
            f"  - name: {name}",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            f"      params: {{mailing_list_id: {list_id}}}",
            f"    every: {every}",
            "    actions: [{type: log}]",
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Rig:
    sb: Sandbox
    pool: asyncpg.Pool
    worker: Worker
    path: Path

    def write(self, flows: dict[str, tuple[int, str]]) -> None:
        self.path.write_text(flow_file(self.sb, flows))

    async def poll(self, name: str) -> asyncpg.Record:
        await self.worker._poll(name)
        row = await self.pool.fetchrow(
            "SELECT events_created, error FROM poll_runs WHERE flow_name = $1"
            " ORDER BY id DESC LIMIT 1",
            name,
        )
        assert row is not None, f"{name} made no poll run"
        return row

    async def state(self, name: str) -> asyncpg.Record | None:
        return await self.pool.fetchrow(
            "SELECT state_key, baseline_done FROM flow_states WHERE flow_name = $1", name
        )


START = {"keep": (1, "5m"), "retune": (1, "5m"), "repoint": (1, "5m"), "drop": (1, "5m")}


@pytest.fixture
async def rig(database: str, tmp_path: Path) -> AsyncIterator[Rig]:
    async with (
        start_sandbox(rate_limit=None) as sb,
        aiohttp.ClientSession() as http,
        asyncpg.create_pool(database, min_size=1, max_size=6, init=json_codecs) as pool,
        asyncpg.create_pool(database, min_size=1, max_size=2, init=json_codecs) as token_pool,
    ):
        sb.state.add_book("One")
        sb.state.add_book("Two")
        sb.state.add_subscriber(1, "old@example.com", {})
        sb.state.add_subscriber(2, "other@example.com", {})
        path = tmp_path / "flows.yaml"
        path.write_text(flow_file(sb, START))
        rt = Runtime(
            pool=pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"reload-{socket.gethostname()}",
            token_pool=token_pool,
        )
        worker = Worker(rt, load_file(str(path), CATALOG), config_path=str(path), port=None)
        await worker.providers.ensure_connections()
        worker._switch(worker.config, await worker._polled_before(worker.config))
        await worker.ownership.tick()
        rig = Rig(sb, pool, worker, path)
        for name in START:
            assert (await rig.poll(name))["error"] is None
        yield rig


async def test_a_removed_flow_stops_being_scheduled_and_polled(rig: Rig) -> None:
    assert rig.worker.scheduler.scheduled == sorted(START)
    rig.write({k: v for k, v in START.items() if k != "drop"})
    assert await rig.worker.reload()
    assert rig.worker.scheduler.scheduled == ["keep", "repoint", "retune"]
    runs = await rig.pool.fetchval("SELECT count(*) FROM poll_runs WHERE flow_name = 'drop'")
    await rig.worker._poll("drop")  # a job that fired just before the reload
    assert (
        await rig.pool.fetchval("SELECT count(*) FROM poll_runs WHERE flow_name = 'drop'") == runs
    )


async def test_a_changed_trigger_starts_a_new_baseline_other_edits_keep_state(rig: Rig) -> None:
    before = {name: await rig.state(name) for name in START}
    rig.write({**START, "retune": (1, "1h"), "repoint": (2, "5m")})
    assert await rig.worker.reload()
    rig.sb.state.add_subscriber(1, "new@example.com", {})
    rig.sb.state.add_subscriber(2, "new2@example.com", {})
    # Only the interval changed: same state, and the new subscriber is an event.
    assert (await rig.poll("retune"))["events_created"] == 1
    assert await rig.state("retune") == before["retune"]
    # Another list: a new baseline, which emits nothing for what list 2 already holds.
    assert (await rig.poll("repoint"))["events_created"] == 0
    after = await rig.state("repoint")
    assert after is not None and before["repoint"] is not None
    assert after["state_key"] != before["repoint"]["state_key"]
    assert after["baseline_done"]
    rig.sb.state.add_subscriber(2, "later@example.com", {})
    assert (await rig.poll("repoint"))["events_created"] == 1


async def test_a_database_error_during_reload_keeps_the_running_flows(rig: Rig) -> None:
    assert rig.worker.rt.token_pool is not None
    await rig.worker.rt.token_pool.close()  # connections' rows cannot be written now
    rig.write({"keep": (1, "5m")})
    with capture_logs() as logs:
        assert not await rig.worker.reload()
    [failed] = [e for e in logs if e["event"] == "config_reload_failed"]
    assert "closed" in failed["error"]
    assert rig.worker.scheduler.scheduled == sorted(START)
    assert sorted(f.name for f in rig.worker.config.flows) == sorted(START)


async def test_a_reload_racing_a_poll_lets_it_finish_on_the_old_flow(rig: Rig) -> None:
    rig.sb.configure(latency=0.3)  # the poll is still waiting for its page during the reload
    rig.sb.state.add_subscriber(1, "racing@example.com", {})
    polling = asyncio.create_task(rig.poll("repoint"))
    await asyncio.sleep(0)  # the poll has read the flow it runs
    rig.write({**START, "repoint": (2, "5m")})
    assert await rig.worker.reload()
    finished = await asyncio.wait_for(polling, 60)
    # It finished on the list it started with; the next poll is the new list's baseline.
    assert (finished["events_created"], finished["error"]) == (1, None)
    event = await rig.pool.fetchval("SELECT item_key FROM events WHERE flow_name = 'repoint'")
    assert event == "racing@example.com"
    rig.sb.configure(latency=0.0)
    assert (await rig.poll("repoint"))["events_created"] == 0
    state = await rig.state("repoint")
    assert state is not None and state["baseline_done"]
    rig.sb.state.add_subscriber(2, "after@example.com", {})
    assert (await rig.poll("repoint"))["events_created"] == 1
