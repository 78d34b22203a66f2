"""Per-install flows: an App Directory install starts an instance, an uninstall ends it."""

from __future__ import annotations

import json
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from cryptography.fernet import Fernet

from connector.catalog import CATALOG
from connector.config import parse
from connector.daemon import Runtime, Worker
from connector.errors import ConfigInvalid
from connector.instances import expand
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.sandbox.routes_auth import install_json
from connector.web import WebState, build_app, serve

APP_ID = "42"
APP_SECRET = "app-directory-secret"


def flow_file(base_url: str, *, flow_extra: str = "", app_provider: str = "sendpulse") -> str:
    return f"""
apps:
  store:
    provider: {app_provider}
    app_id: "{APP_ID}"
    client_id: store-client
    redirect_uri: https://connector.example.com/apps/store/callback
    secret: {APP_SECRET}
    base_url: {base_url}
    scopes: [emails]
flows:
  - name: new-subscribers
    installs_of: store
    trigger:
      type: sendpulse.subscriber_added
      params: {{mailing_list_id: 1}}
{flow_extra}    actions:
      - type: log
      - type: sendpulse.add_to_blacklist
        email: "{{{{ event.email }}}}"
"""


def test_per_install_flow_loads_with_its_connection_left_open() -> None:
    config = parse(flow_file("http://127.0.0.1:1"), CATALOG, "flows.yaml", env={})
    flow = config.flows[0]
    assert flow.installs_of == "store"
    assert flow.trigger.connection is None
    assert flow.actions[1].connection is None


@pytest.mark.parametrize(
    ("text", "path", "words"),
    [
        (
            flow_file("http://127.0.0.1:1").replace("installs_of: store", "installs_of: shop"),
            "flows[0].installs_of",
            "unknown app 'shop'; known: store",
        ),
        (
            flow_file("http://127.0.0.1:1").replace(
                "      params: {mailing_list_id: 1}",
                "      params: {mailing_list_id: 1}\n      connection: main",
            ),
            "flows[0].trigger.connection",
            "remove 'connection'",
        ),
        (
            flow_file("http://127.0.0.1:1").replace("scopes: [emails]", "scopes: [smtp]"),
            "flows[0].trigger.type",
            "needs the 'emails' scope, but app 'store' was granted only: smtp",
        ),
        (
            flow_file("http://127.0.0.1:1", app_provider="mailium"),
            "flows[0].installs_of",
            "installs_of takes a sendpulse app",
        ),
    ],
    ids=["unknown-app", "connection-given", "missing-scope", "not-sendpulse"],
)
def test_bad_per_install_flows_are_refused(text: str, path: str, words: str) -> None:
    with pytest.raises(ConfigInvalid) as caught:
        parse(text, CATALOG, "flows.yaml", env={})
    assert any(p.path == path and words in p.message for p in caught.value.problems), (
        caught.value.problems
    )


def test_expand_makes_one_instance_per_install() -> None:
    config = parse(flow_file("http://127.0.0.1:1"), CATALOG, "flows.yaml", env={})
    assert expand(config, {"store": []}).flows == []
    expanded = expand(config, {"store": ["store-1", "store-2"]})
    assert [f.name for f in expanded.flows] == [
        "new-subscribers@store-1",
        "new-subscribers@store-2",
    ]
    first = expanded.flows[0]
    assert first.trigger.connection == "store-1"
    assert [a.connection for a in first.actions] == [None, "store-1"]
    assert [p.name for p in expanded.plans] == [f.name for f in expanded.flows]
    # The plans run on the install too: its trigger and its SendPulse actions.
    assert [p.connection for p in expanded.plans] == ["store-1", "store-2"]
    assert [a.connection for a in expanded.plans[1].actions] == [None, "store-2"]
    # The file's own flow is left as written.
    assert [f.name for f in expanded.document.flows] == ["new-subscribers"]


@dataclass
class Rig:
    sb: Sandbox
    worker: Worker
    base: str
    http: aiohttp.ClientSession
    pool: asyncpg.Pool


@pytest.fixture
async def rig(db_pool: asyncpg.Pool, tmp_path: Path) -> AsyncIterator[Rig]:
    async with start_sandbox(rate_limit=None) as sb, aiohttp.ClientSession() as http:
        sb.state.auth.add_app(APP_ID, APP_SECRET)
        sb.state.add_book("Newsletter")
        sb.state.add_subscriber(1, "old@example.com", {})
        config = parse(flow_file(sb.base_url), CATALOG, "flows.yaml", env={})
        rt = Runtime(
            pool=db_pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"test-{socket.gethostname()}",
        )
        worker = Worker(rt, config, port=None)
        app = build_app(WebState(pool=db_pool, scheduler_running=lambda: True), worker._routes())
        runner = await serve(app, "127.0.0.1", 0)
        try:
            yield Rig(sb, worker, f"http://127.0.0.1:{runner.addresses[0][1]}", http, db_pool)
        finally:
            await runner.cleanup()


async def test_an_install_runs_its_own_instance_until_uninstalled(rig: Rig) -> None:
    assert not await rig.worker.refresh_installs()
    assert rig.worker.config.flows == []

    code = rig.sb.state.auth.mint_code(APP_ID, 777, rig.sb.state.now())
    async with rig.http.get(f"{rig.base}/apps/store/login", params={"code": code}) as resp:
        assert resp.status == 200
    assert await rig.worker.refresh_installs()
    [flow] = rig.worker.config.flows
    assert flow.name == "new-subscribers@store-777"
    assert rig.worker.scheduler.scheduled == ["new-subscribers@store-777"]

    await rig.worker.ownership.tick()
    await rig.worker._poll(flow.name)  # the baseline, through the install's own token
    rig.sb.state.add_subscriber(1, "new@example.com", {})
    await rig.worker._poll(flow.name)
    rows = await rig.pool.fetch(
        "SELECT d.action_type, d.connection_id, e.item_key FROM deliveries d"
        " JOIN events e ON e.id = d.event_id ORDER BY d.action_index"
    )
    assert [(r["action_type"], r["connection_id"], r["item_key"]) for r in rows] == [
        ("log", None, "new@example.com"),
        ("sendpulse.add_to_blacklist", "store-777", "new@example.com"),
    ]
    runs = await rig.pool.fetch("SELECT connection_id FROM poll_runs")
    assert {r["connection_id"] for r in runs} == {"store-777"}

    install = next(iter(rig.sb.state.auth.installs.values()))
    async with rig.http.post(
        f"{rig.base}/apps/store/uninstall",
        data=json.dumps(install_json(install)),
        headers={"Content-Type": "application/json"},
    ) as resp:
        assert resp.status == 200
    assert await rig.worker.refresh_installs()
    assert rig.worker.config.flows == []
    assert rig.worker.scheduler.scheduled == []
    assert await rig.pool.fetchval("SELECT count(*) FROM events") == 0
