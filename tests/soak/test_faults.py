"""The fault suite: worker processes against a failing sandbox, receiver and Postgres.

Three ``connector run`` processes share a Postgres cluster of this test's own. Subscribers
keep arriving in the sandbox while, at random:

- a worker is killed with SIGKILL and replaced within two seconds;
- the sandbox answers 500 or 429, drops the connection, hangs, or sends malformed JSON;
- the receiver answers 500, 502 or 503, or answers after the sender's timeout;

and, mid-run, Postgres is restarted once and later stopped for ``FAULTS_PG_STOP`` seconds.
Once the faults stop and everything settles: every subscriber added arrived at the
receiver, every request carried a valid signature, and each event arrived under exactly one
webhook-id. The figures are printed. Workers log one ``database_unavailable`` and one
``database_available`` line per outage, never asyncpg's traceback per reconnect attempt.

``make soak`` runs the long variant (sizes: ``FAULTS_ITEMS`` 600, ``FAULTS_KILLS`` 12,
``FAULTS_PG_STOP`` 20 s, ``FAULTS_SEED`` random); ``make test`` runs a short one.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from connector.db import migrate as migrations
from connector.db.embedded import EmbeddedPostgres
from connector.db.pool import ensure_database
from connector.errors import SignatureInvalid
from connector.sandbox.faults import Fault, Faults
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.webhook_signing import generate_secret, verify
from tests.e2e.conftest import Daemon, eventually, log_records
from tests.soak.conftest import serve_hook
from tests.soak.test_kill9 import Cluster, fetch

WEBHOOK_SECRET = generate_secret()
WEBHOOK_TIMEOUT = 1.0
# Flow -> connection; each flow watches a mailing list of its own.
CONNECTION_OF = {"f1": "c1", "f2": "c2", "f3": "c3", "f4": "c1"}
SANDBOX_FAULTS = {"500": 0.04, "429": 0.04, "drop": 0.02, "hang": 0.01, "malformed": 0.02}
HANG_SECONDS = 4.0
RECEIVER_5XX = 0.08
RECEIVER_TOO_LATE = 0.04
KILL_EVERY = (2.0, 5.0)
RESTART_AFTER = (0.0, 1.5)


@dataclass(frozen=True)
class Sizes:
    items: int
    kills: int
    pg_stop: float
    settle: float


LONG = Sizes(
    items=int(os.environ.get("FAULTS_ITEMS", "600")),
    kills=int(os.environ.get("FAULTS_KILLS", "12")),
    pg_stop=float(os.environ.get("FAULTS_PG_STOP", "20")),
    settle=600.0,
)
SHORT = Sizes(items=40, kills=2, pg_stop=4.0, settle=240.0)
SEED = int(os.environ.get("FAULTS_SEED", str(time.time_ns() % 1_000_000)))


class CountingFaults(Faults):
    """The sandbox's random faults, counted by kind; hangs end after a few seconds."""

    def __init__(self, seed: int) -> None:
        super().__init__(seed)
        self.injected: Counter[str] = Counter()
        self.enabled = True

    def take(self, path: str) -> Fault | None:
        if not self.enabled:
            return None
        fault = super().take(path)
        if fault is None:
            return None
        self.injected[fault.kind] += 1
        return Fault(fault.kind, fault.retry_after, HANG_SECONDS)


@dataclass
class FailingReceiver:
    """Checks every signature; answers 5xx or too late at random while ``failing``."""

    rng: random.Random
    failing: bool = True
    # The first answers, so that even a short run sees each kind of failure.
    scripted: list[str] = field(default_factory=lambda: ["5xx", "late"])
    arrivals: list[tuple[str, str]] = field(default_factory=list)
    rejected: int = 0
    errors: int = 0
    too_late: int = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify([WEBHOOK_SECRET], request.headers, body, now=datetime.now(UTC))
        except SignatureInvalid:
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        roll = self.rng.random() if self.failing else 1.0
        if self.scripted:
            roll = 0.0 if self.scripted.pop(0) == "5xx" else RECEIVER_5XX
        if roll < RECEIVER_5XX:
            self.errors += 1
            return web.json_response({"error": "down"}, status=self.rng.choice([500, 502, 503]))
        self.arrivals.append((msg_id, json.loads(body)["event_id"]))
        if roll < RECEIVER_5XX + RECEIVER_TOO_LATE:
            self.too_late += 1
            await asyncio.sleep(WEBHOOK_TIMEOUT + 0.5)
        return web.json_response({"ok": True})


@pytest.fixture
async def failing_sandbox() -> AsyncIterator[Sandbox]:
    async with start_sandbox(rate_limit=20.0) as sandbox:
        yield sandbox


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[FailingReceiver, str]]:
    rec = FailingReceiver(random.Random(SEED))  # noqa: S311 - seeded so a run can be repeated
    async with serve_hook(rec.handle) as url:
        yield rec, url


def write_flows(path: Path, sb: Sandbox, url: str, books: dict[str, int]) -> Path:
    connections = sorted(set(CONNECTION_OF.values()))
    for connection in connections:
        sb.add_client(f"client-{connection}", f"secret-{connection}")
    document = {
        "connections": {
            c: {
                "client_id": f"client-{c}",
                "client_secret": f"secret-{c}",
                "base_url": sb.base_url,
                "rate_limit": "5/s",
                # A hung sandbox call gives up soon and is retried by the next poll.
                "timeout": "3s",
            }
            for c in connections
        },
        "egress": {"allow_networks": ["127.0.0.0/8"]},
        "flows": [
            {
                "name": flow,
                "trigger": {
                    "type": "sendpulse.subscriber_added",
                    "connection": connection,
                    "params": {"mailing_list_id": books[flow]},
                },
                "every": "10s",
                "start": "all",
                "retry_schedule": ["1s", "2s", "3s", "5s", "5s", "5s", "5s", "5s", "5s", "5s"],
                "actions": [
                    {
                        "type": "webhook",
                        "url": url,
                        "secret": WEBHOOK_SECRET,
                        "timeout": f"{WEBHOOK_TIMEOUT:g}s",
                    }
                ],
            }
            for flow, connection in CONNECTION_OF.items()
        ],
    }
    path.write_text(json.dumps(document, indent=2))
    return path


async def run_fault_suite(
    sizes: Sizes,
    pg: EmbeddedPostgres,
    tmp_path: Path,
    processes: list[Daemon],
    sb: Sandbox,
    receiver: tuple[FailingReceiver, str],
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded so a run can be repeated
    rec, url = receiver
    faults = CountingFaults(SEED)
    sb.state.faults = faults
    database = pg.dsn()
    await ensure_database(database)
    conn = await asyncpg.connect(database)
    try:
        await migrations.migrate(conn)
    finally:
        await conn.close()
    books = {flow: sb.state.add_book(f"List {flow}").id for flow in CONNECTION_OF}
    config = write_flows(tmp_path / "flows.yaml", sb, url, books)
    cluster = Cluster(tmp_path, config, database, processes)
    cluster.slots = [cluster.spawn() for _ in range(3)]

    async def baselines() -> bool:
        rows = await fetch(database, "SELECT count(*) FROM flow_states WHERE baseline_done")
        return int(rows[0][0]) >= len(CONNECTION_OF)

    await eventually(baselines, "every flow's first poll", 90)
    for kind, rate in SANDBOX_FAULTS.items():
        # One of each first, whatever the dice say later.
        faults.script(kind, 1, path_prefix="/addressbooks")
        faults.set_rate(kind, rate)

    run_for = max(sizes.kills * sum(KILL_EVERY) / 2, 2 * sizes.pg_stop + 10)
    pace = run_for / sizes.items
    added: dict[str, list[str]] = defaultdict(list)
    outages: list[str] = []
    # A worker process that starts while Postgres is away exits (2) rather than wait for
    # it; its supervisor would start it again. Here kills and outages take turns instead.
    turns = asyncio.Lock()

    async def add_items() -> None:
        began = time.monotonic()
        for n in range(sizes.items):
            flow = rng.choice(list(books))
            email = f"s{n}@example.com"
            sb.state.add_subscriber(books[flow], email)
            added[flow].append(email)
            await asyncio.sleep(max(0.0, began + (n + 1) * pace - time.monotonic()))

    async def kill_workers() -> None:
        for _ in range(sizes.kills):
            await asyncio.sleep(rng.uniform(*KILL_EVERY))
            slot = rng.randrange(3)
            async with turns:
                await cluster.kill_and_restart(slot, rng)
                fresh = cluster.slots[slot]
                await eventually(
                    lambda: '"worker_started"' in fresh.output(),  # noqa: B023 - awaited here
                    "the new worker to start",
                    60,
                )

    async def disturb_postgres() -> None:
        await asyncio.sleep(run_for * 0.2)
        async with turns:
            await asyncio.to_thread(pg.restart)
        outages.append("restart")
        await asyncio.sleep(run_for * 0.3)
        async with turns:
            await asyncio.to_thread(pg.stop)
            await asyncio.sleep(sizes.pg_stop)
            await asyncio.to_thread(pg.start)
        outages.append(f"stop {sizes.pg_stop:g}s")

    began = time.monotonic()
    await asyncio.gather(add_items(), kill_workers(), disturb_postgres())
    calm = time.monotonic()
    # The faults stop; what they delayed must now arrive, each retry under its own id.
    faults.enabled = False
    rec.failing = False
    expected = {f"{flow}/{email}" for flow, emails in added.items() for email in emails}

    deliveries_sql = (
        "SELECT d.id::text AS id, d.state, e.id AS event_id, e.flow_name, e.item_key"
        " FROM deliveries d JOIN events e ON e.id = d.event_id"
    )

    async def settled() -> bool:
        rows = await fetch(database, deliveries_sql)
        arrived = {r["event_id"] for _, r in _arrived_rows(rec, rows)}
        return len(rows) >= sizes.items and len(arrived) >= sizes.items

    try:
        await eventually(settled, f"{sizes.items} changes to arrive", sizes.settle, interval=0.5)
    finally:
        rows = await fetch(database, deliveries_sql)
        ids_of_event: dict[str, set[str]] = defaultdict(set)
        for msg_id, event_id in rec.arrivals:
            ids_of_event[event_id].add(msg_id)
        distinct = {msg_id for msg_id, _ in rec.arrivals}
        print(
            f"\nfaults seed={SEED} changes={sizes.items} deliveries={len(rows)}"
            f" states={dict(Counter(r['state'] for r in rows))}"
            f" sandbox_faults={dict(faults.injected)} sandbox_requests={len(sb.requests())}"
            f" receiver_5xx={rec.errors} receiver_too_late={rec.too_late}"
            f" kills={len(cluster.restart_gaps)} workers_started={cluster.generation}"
            f" postgres={outages} received={len(rec.arrivals)} distinct={len(distinct)}"
            f" duplicates={len(rec.arrivals) - len(distinct)} bad_signatures={rec.rejected}"
            f" run_s={calm - began:.0f} settle_s={time.monotonic() - calm:.1f}"
        )

    # Every change made in the sandbox arrived, as exactly one event and one delivery.
    by_item = Counter(f"{r['flow_name']}/{r['item_key']}" for r in rows)
    assert set(by_item) == expected
    assert max(by_item.values()) == 1
    arrived_events = {r["event_id"] for _, r in _arrived_rows(rec, rows)}
    assert arrived_events == {r["event_id"] for r in rows}
    # Every request was signed correctly, and each event came under exactly one webhook-id:
    # its delivery's, however many times it was sent.
    assert rec.rejected == 0
    assert all(len(ids) == 1 for ids in ids_of_event.values()), {
        e: ids for e, ids in ids_of_event.items() if len(ids) > 1
    }
    by_delivery = {r["id"]: r["event_id"] for r in rows}
    assert all(by_delivery.get(msg_id) == event_id for msg_id, event_id in rec.arrivals)
    assert set(faults.injected) == set(SANDBOX_FAULTS)
    assert rec.errors >= 1 and rec.too_late >= 1
    for daemon in cluster.slots:
        assert daemon.proc.poll() is None, daemon.output()[-3000:]

    # A Postgres outage is one line down and one line back per worker, never a traceback
    # per reconnect attempt.
    for daemon in processes:
        text = daemon.output()
        assert "Failed to restore the pool connection" not in text, daemon.log_path.name
        events = [r.get("event") for r in log_records(text)]
        assert events.count("database_unavailable") <= len(outages), daemon.log_path.name
        assert events.count("database_available") <= len(outages), daemon.log_path.name


def _arrived_rows(rec: FailingReceiver, rows: list[Any]) -> list[tuple[str, Any]]:
    by_id = {r["id"]: r for r in rows}
    return [(msg_id, by_id[msg_id]) for msg_id, _ in rec.arrivals if msg_id in by_id]


@pytest.mark.soak
@pytest.mark.timeout(1800)
async def test_fault_soak_loses_nothing_and_doubles_nothing(
    private_postgres: EmbeddedPostgres,
    tmp_path: Path,
    processes: list[Daemon],
    failing_sandbox: Sandbox,
    receiver: tuple[FailingReceiver, str],
) -> None:
    await run_fault_suite(LONG, private_postgres, tmp_path, processes, failing_sandbox, receiver)


@pytest.mark.slow
@pytest.mark.timeout(420)
async def test_short_fault_run_loses_nothing_and_doubles_nothing(
    private_postgres: EmbeddedPostgres,
    tmp_path: Path,
    processes: list[Daemon],
    failing_sandbox: Sandbox,
    receiver: tuple[FailingReceiver, str],
) -> None:
    await run_fault_suite(SHORT, private_postgres, tmp_path, processes, failing_sandbox, receiver)
