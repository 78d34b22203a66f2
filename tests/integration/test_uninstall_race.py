"""An app uninstalled while a poll or a delivery of that install is running leaves nothing."""

from __future__ import annotations

import asyncio
import json

import aiohttp

from connector.dispatch import Dispatcher
from connector.sandbox.routes_auth import install_json
from tests.integration.test_instances import APP_ID, Rig, rig

__all__ = ["rig"]  # the fixture, shared with test_instances

FLOW = "new-subscribers@store-777"


async def install(rig: Rig) -> None:
    code = rig.sb.state.auth.mint_code(APP_ID, 777, rig.sb.state.now())
    async with rig.http.get(f"{rig.base}/apps/store/login", params={"code": code}) as resp:
        assert resp.status == 200
    assert await rig.worker.refresh_installs()
    await rig.worker.ownership.tick()
    await rig.worker._poll(FLOW)  # the baseline


async def uninstall(rig: Rig) -> None:
    record = next(iter(rig.sb.state.auth.installs.values()))
    async with rig.http.post(
        f"{rig.base}/apps/store/uninstall",
        data=json.dumps(install_json(record)),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200


async def leftovers(rig: Rig) -> dict[str, int]:
    counts = {}
    for table in ("events", "deliveries", "flow_states", "snapshot_items", "tokens"):
        counts[table] = await rig.pool.fetchval(f"SELECT count(*) FROM {table}")  # noqa: S608
    return counts


async def test_uninstall_during_a_poll_of_the_install_leaves_nothing_behind(rig: Rig) -> None:
    await install(rig)
    rig.sb.state.add_subscriber(1, "during@example.com", {})
    rig.sb.configure(latency=1.0)  # the poll waits for its page while the uninstall runs
    polling = asyncio.create_task(rig.worker._poll(FLOW))
    # The poll holds its lease while it fetches. Waits on the poll, not on a wall-clock budget.
    leased = "SELECT count(*) FROM leases WHERE resource LIKE 'poll:%'"
    while not await rig.pool.fetchval(leased):
        assert not polling.done(), "the poll finished without taking its lease"
        await asyncio.sleep(0.01)
    await uninstall(rig)
    await asyncio.wait_for(polling, 60)
    rig.sb.configure(latency=0.0)
    # The purge deletes the install's connection row with everything else of it.
    assert await rig.pool.fetchval("SELECT count(*) FROM connections WHERE id = 'store-777'") == 0
    # The poll that was under way commits nothing for an install that is gone.
    assert await leftovers(rig) == dict.fromkeys(
        ("events", "deliveries", "flow_states", "snapshot_items", "tokens"), 0
    )


async def test_uninstall_during_a_delivery_of_the_install_leaves_nothing_behind(
    rig: Rig,
) -> None:
    await install(rig)
    rig.sb.state.add_subscriber(1, "spam@example.com", {})
    await rig.worker._poll(FLOW)
    assert await rig.pool.fetchval("SELECT count(*) FROM deliveries") == 2
    rig.sb.configure(latency=1.0)  # the blacklist call is in flight during the uninstall
    async with aiohttp.ClientSession() as http:
        dispatcher = Dispatcher(
            rig.pool, rig.worker.config, http=http, providers=rig.worker.providers
        )
        delivering = asyncio.create_task(dispatcher.run_once())
        # Waits on the dispatcher, not on a wall-clock budget: on a loaded machine the claim
        # can take seconds. The test's own timeout still bounds a dispatcher that never claims.
        running = "SELECT count(*) FROM deliveries WHERE state = 'running'"
        while not await rig.pool.fetchval(running):
            assert not delivering.done(), "the dispatcher finished without claiming a delivery"
            await asyncio.sleep(0.01)
        await uninstall(rig)
        await asyncio.wait_for(delivering, 60)
    rig.sb.configure(latency=0.0)
    # The attempt that was under way finds its row gone and writes nothing back.
    assert await leftovers(rig) == dict.fromkeys(
        ("events", "deliveries", "flow_states", "snapshot_items", "tokens"), 0
    )
    assert await rig.pool.fetchval("SELECT count(*) FROM delivery_attempts") == 0
