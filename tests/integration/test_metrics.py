"""Metrics move because real work happened: a poll, a 429, a token refresh, a delivery."""

from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
import asyncpg
from cryptography.fernet import Fernet

from connector import metrics
from connector.catalog import CATALOG
from connector.config import parse
from connector.daemon import Runtime, Worker
from connector.db.pool import json_codecs
from connector.dispatch import Dispatcher
from connector.sandbox.harness import start_sandbox

FLOW = "metered-flow"
CONNECTION = "metered"

# (metric, labels): every series this test expects to move, and by how much.
SERIES = {
    ("connector_polls_total", (("flow", FLOW), ("outcome", "ok"))): 1.0,
    ("connector_events_created_total", (("flow", FLOW), ("source", "poll"))): 3.0,
    ("connector_token_refreshes_total", (("connection", CONNECTION),)): 1.0,
    ("connector_api_rate_limited_total", (("connection", CONNECTION),)): 1.0,
    ("connector_api_requests_total", (("connection", CONNECTION), ("status", "429"))): 1.0,
    # The one page of the list, asked again after the 429.
    ("connector_api_requests_total", (("connection", CONNECTION), ("status", "200"))): 1.0,
    (
        "connector_deliveries_total",
        (("flow", FLOW), ("action", "log"), ("outcome", "delivered")),
    ): 3.0,
    ("connector_poll_duration_seconds_count", (("flow", FLOW),)): 1.0,
    ("connector_delivery_latency_seconds_count", (("flow", FLOW),)): 3.0,
}
UNMOVED = [
    ("connector_polls_total", (("flow", FLOW), ("outcome", "error"))),
    ("connector_deliveries_total", (("flow", FLOW), ("action", "log"), ("outcome", "retry"))),
    ("connector_deliveries_total", (("flow", FLOW), ("action", "log"), ("outcome", "dead"))),
]


def value(name: str, labels: tuple[tuple[str, str], ...]) -> float:
    return metrics.REGISTRY.get_sample_value(name, dict(labels)) or 0.0


async def test_a_poll_a_429_a_token_and_deliveries_move_their_series(
    database: str, tmp_path: Path
) -> None:
    async with (
        start_sandbox(rate_limit=None) as sb,
        aiohttp.ClientSession() as http,
        asyncpg.create_pool(database, min_size=1, max_size=6, init=json_codecs) as pool,
    ):
        sb.state.add_book("Newsletter")
        for n in range(3):
            sb.state.add_subscriber(1, f"s{n}@example.com", {})
        sb.faults.script("429", path_prefix="/addressbooks/1/emails", retry_after=0)
        text = (
            "connections:\n"
            f"  {CONNECTION}: {{client_id: {sb.client_id}, client_secret: {sb.client_secret},"
            f" base_url: {sb.base_url}}}\n"
            "flows:\n"
            f"  - name: {FLOW}\n"
            "    trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
            "    start: all\n"
            "    actions: [{type: log}]\n"
        )
        config = parse(text, CATALOG, "flows.yaml", env={})
        rt = Runtime(
            pool=pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"metrics-{socket.gethostname()}",
        )
        worker = Worker(rt, config, port=None)
        await worker.providers.ensure_connections()
        await worker.ownership.tick()
        before = {series: value(*series) for series in [*SERIES, *UNMOVED]}

        await worker._poll(FLOW)
        dispatcher = Dispatcher(pool, config, http=http, providers=worker.providers)
        assert await dispatcher.run_once() == 3

        moved = {series: value(*series) - before[series] for series in SERIES}
        assert moved == SERIES
        assert {series: value(*series) - before[series] for series in UNMOVED} == dict.fromkeys(
            UNMOVED, 0.0
        )
        # What was counted is what the sandbox saw.
        seen = [(r.path, r.status) for r in sb.requests() if r.path.startswith("/addressbooks")]
        assert [status for _path, status in seen] == [429, 200]
        exposed = metrics.render().decode()
        assert f'connector_api_rate_limited_total{{connection="{CONNECTION}"}}' in exposed
