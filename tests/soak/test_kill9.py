"""Kill -9 soak: three workers on one database, one of them SIGKILLed every few seconds.

Subscribers keep arriving in the sandbox while a random worker is killed and restarted (with a
fresh worker id, as a new process would have) within two seconds. Once the killing stops and
everything has settled: every subscriber made exactly one event, every delivery is delivered,
the receiver saw every delivery id, a repeat only ever followed an attempt whose answer was
not recorded, and no two workers polled one connection at the same time.

Sizes: ``SOAK_ITEMS`` (default 2000), ``SOAK_KILLS`` (default 30), ``SOAK_SEED`` (random).
Run with ``make soak``; ``make test`` leaves it out.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiohttp import web

from connector.errors import SignatureInvalid
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.webhook_signing import generate_secret, verify
from tests.e2e.conftest import SECRET_KEY, Daemon, cli_env, eventually, wait_exit
from tests.e2e.conftest import write_flows as write_flow_file
from tests.soak.conftest import serve_hook

pytestmark = [pytest.mark.soak, pytest.mark.timeout(1500)]

ITEMS = int(os.environ.get("SOAK_ITEMS", "2000"))
KILLS = int(os.environ.get("SOAK_KILLS", "30"))
SEED = int(os.environ.get("SOAK_SEED", str(time.time_ns() % 1_000_000)))
WORKERS = 3
# Seconds between kills (uniform), and from a kill to the restart (uniform, under 2).
KILL_EVERY = (2.0, 5.0)
RESTART_AFTER = (0.0, 1.5)
WEBHOOK_SECRET = generate_secret()
WEBHOOK_TIMEOUT = 1.0
LEASE_TTL = "6"
DELIVERY_LEASE = "10"
# Flow -> connection; each flow watches a mailing list of its own.
CONNECTION_OF = {"f1": "c1", "f2": "c2", "f3": "c3", "f4": "c4", "f5": "c1", "f6": "c3"}


@dataclass(frozen=True)
class Arrival:
    """One POST as the receiver saw it."""

    webhook_id: str
    event_id: str
    at: datetime


class Receiver:
    """Records every (webhook-id, event id); answers 200, sometimes slowly, sometimes too late.

    A tenth of the answers take up to 0.8 s; the first attempt of about one delivery in fifty
    is answered after the sender's timeout, so that attempt is not acknowledged and the
    delivery is tried again with the same webhook-id.
    """

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.arrivals: list[Arrival] = []
        self.seen: set[str] = set()
        self.rejected = 0
        self.too_late = 0

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify([WEBHOOK_SECRET], request.headers, body, now=datetime.now(UTC))
        except SignatureInvalid:
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        first = msg_id not in self.seen
        self.seen.add(msg_id)
        self.arrivals.append(Arrival(msg_id, json.loads(body)["event_id"], datetime.now(UTC)))
        roll = self.rng.random()
        if first and roll < 0.02:
            self.too_late += 1
            await asyncio.sleep(WEBHOOK_TIMEOUT + 0.6)
        elif roll < 0.12:
            await asyncio.sleep(self.rng.uniform(0.05, 0.8))
        return web.json_response({"ok": True})


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with start_sandbox(rate_limit=20.0) as sandbox:
        yield sandbox


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver(random.Random(SEED))  # noqa: S311 - seeded so a run can be repeated
    async with serve_hook(rec.handle) as url:
        yield rec, url


def write_flows(path: Path, sb: Sandbox, url: str, books: dict[str, int]) -> Path:
    return write_flow_file(
        path,
        sb,
        url,
        {flow: (connection, books[flow]) for flow, connection in CONNECTION_OF.items()},
        secret=WEBHOOK_SECRET,
        start="all",
        # Quick retries: an unacknowledged attempt is tried again within seconds.
        flow_options={"retry_schedule": ["1s", "2s", "3s", "5s", "5s", "5s", "5s", "5s"]},
        action_options={"timeout": f"{WEBHOOK_TIMEOUT:g}s"},
    )


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def overlapping_polls(runs: list[asyncpg.Record]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Pairs of finished polls of one connection by different workers that overlap in time."""
    by_connection: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for run in runs:
        by_connection[run["connection_id"]].append(run)
    bad = []
    for rows in by_connection.values():
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if a["worker"] == b["worker"]:
                    continue  # one worker's flows on one connection share its lease
                if a["started_at"] < b["finished_at"] and b["started_at"] < a["finished_at"]:
                    bad.append((dict(a), dict(b)))
    return bad


class Cluster:
    """Three worker slots; a slot's process can be killed and replaced by a new one."""

    def __init__(self, tmp_path: Path, config: Path, database: str, started: list[Daemon]):
        self.tmp_path = tmp_path
        self.config = config
        self.database = database
        self.started = started
        self.slots: list[Daemon] = []
        self.generation = 0
        self.restart_gaps: list[float] = []

    def spawn(self) -> Daemon:
        self.generation += 1
        worker_id = f"w{self.generation}"
        settings = {
            "DATABASE_URL": self.database,
            "CONNECTOR_SECRET_KEY": SECRET_KEY,
            "CONNECTOR_HOME": str(self.tmp_path / "home"),
            "CONNECTOR_WORKER_ID": worker_id,
            "CONNECTOR_LEASE_TTL": LEASE_TTL,
            "CONNECTOR_DELIVERY_LEASE": DELIVERY_LEASE,
            "PORT": "0",
        }
        daemon = Daemon(
            ["run", "--config", str(self.config)],
            cli_env(**settings),
            self.tmp_path / f"{worker_id}.log",
        )
        self.started.append(daemon)
        return daemon

    async def kill_and_restart(self, slot: int, rng: random.Random) -> None:
        victim = self.slots[slot]
        killed = time.monotonic()
        victim.proc.kill()
        code = await wait_exit(victim.proc, 10)
        assert code == -signal.SIGKILL, f"{victim.log_path.name} exited {code}"
        await asyncio.sleep(rng.uniform(*RESTART_AFTER))
        self.slots[slot] = self.spawn()
        self.restart_gaps.append(time.monotonic() - killed)


async def test_kill9_soak_loses_and_doubles_nothing(
    database: str,
    tmp_path: Path,
    processes: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rng = random.Random(SEED)  # noqa: S311 - seeded so a run can be repeated
    rec, url = receiver
    sb.configure(latency=0.02)
    books = {flow: sb.state.add_book(f"List {flow}").id for flow in CONNECTION_OF}
    config = write_flows(tmp_path / "flows.yaml", sb, url, books)
    cluster = Cluster(tmp_path, config, database, processes)
    cluster.slots = [cluster.spawn() for _ in range(WORKERS)]

    async def baselines() -> bool:
        rows = await fetch(database, "SELECT count(*) FROM flow_states WHERE baseline_done")
        return int(rows[0][0]) >= len(CONNECTION_OF)

    await eventually(baselines, "every flow's first poll", 60)

    # Items arrive at a pace that spreads them over the whole killing period.
    pace = KILLS * (sum(KILL_EVERY) + sum(RESTART_AFTER)) / 2 / ITEMS
    added: dict[str, list[str]] = defaultdict(list)

    async def add_items() -> None:
        flows = list(books)
        began = time.monotonic()
        for n in range(ITEMS):
            flow = rng.choice(flows)
            email = f"s{n}@example.com"
            sb.state.add_subscriber(books[flow], email)
            added[flow].append(email)
            # Keep to the schedule without drifting: wait until item n+1 is due.
            await asyncio.sleep(max(0.0, began + (n + 1) * pace - time.monotonic()))

    async def kill_workers() -> None:
        for _ in range(KILLS):
            await asyncio.sleep(rng.uniform(*KILL_EVERY))
            await cluster.kill_and_restart(rng.randrange(WORKERS), rng)

    began = time.monotonic()
    await asyncio.gather(add_items(), kill_workers())
    calm = time.monotonic()
    expected = {(flow, email) for flow, emails in added.items() for email in emails}
    assert len(expected) == ITEMS

    deliveries_sql = (
        "SELECT d.id::text AS id, d.state, d.attempt, d.delivered_at, e.id AS event_id,"
        " e.flow_name, e.item_key FROM deliveries d JOIN events e ON e.id = d.event_id"
    )

    async def settled() -> bool:
        rows = await fetch(database, deliveries_sql)
        return len(rows) >= ITEMS and all(r["state"] == "delivered" for r in rows)

    try:
        await eventually(settled, f"{ITEMS} deliveries to settle", 180, interval=0.5)
    finally:
        rows = await fetch(database, deliveries_sql)
        attempts = await fetch(
            database,
            "SELECT delivery_id::text AS id, count(*) AS total,"
            " count(*) FILTER (WHERE outcome = 'delivered') AS delivered,"
            " count(*) FILTER (WHERE detail LIKE 'lease expired%') AS rescued"
            " FROM delivery_attempts GROUP BY delivery_id",
        )
        states = Counter(r["state"] for r in rows)
        received = Counter(a.webhook_id for a in rec.arrivals)
        print(
            f"\nsoak seed={SEED} items={ITEMS} kills={len(cluster.restart_gaps)}"
            f" workers_started={cluster.generation} deliveries={len(rows)} states={dict(states)}"
            f" received={len(rec.arrivals)} distinct={len(received)}"
            f" duplicates={len(rec.arrivals) - len(received)} too_late={rec.too_late}"
            f" rescued={sum(a['rescued'] for a in attempts)}"
            f" run_s={calm - began:.0f} settle_s={time.monotonic() - calm:.1f}"
            f" max_restart_gap_s={max(cluster.restart_gaps, default=0):.2f}"
        )
    assert all(d.proc.poll() is None for d in cluster.slots), "a live worker exited"
    assert max(cluster.restart_gaps) < 2.0

    # Exactly one event, and one delivery, per subscriber added; all of them delivered.
    per_item = Counter((r["flow_name"], r["item_key"]) for r in rows)
    assert set(per_item) == expected
    assert max(per_item.values()) == 1
    assert states == Counter({"delivered": ITEMS})

    # The receiver saw every delivery id and nothing else, every one signed correctly.
    by_id = {r["id"]: r for r in rows}
    assert rec.rejected == 0
    assert set(received) == set(by_id)

    # A repeat reuses the delivery's webhook-id and event id, and only follows attempts
    # whose answer was never recorded: nothing arrives once a delivery is recorded, and
    # there are never more arrivals than claimed attempts.
    assert all(a.event_id == by_id[a.webhook_id]["event_id"] for a in rec.arrivals)
    late = [a for a in rec.arrivals if a.at > by_id[a.webhook_id]["delivered_at"]]
    assert not late, late[:5]
    over = {i: n for i, n in received.items() if n > by_id[i]["attempt"]}
    assert not over, over
    # Each delivery's attempts are written down: exactly one delivered, and every arrival
    # before it belongs to an attempt recorded as not delivered (timed out, or its worker
    # was killed and the lease rescued).
    recorded = {a["id"]: a for a in attempts}
    assert set(recorded) == set(by_id)
    assert {a["delivered"] for a in attempts} == {1}
    unrecorded = {i: n for i, n in received.items() if n > recorded[i]["total"]}
    assert not unrecorded, unrecorded

    # No two workers polled one connection at the same time.
    runs = await fetch(
        database,
        "SELECT connection_id, worker, started_at, finished_at FROM poll_runs"
        " WHERE finished_at IS NOT NULL ORDER BY connection_id, started_at",
    )
    assert len({r["worker"] for r in runs}) > WORKERS
    overlaps = overlapping_polls(runs)
    assert not overlaps, overlaps[:3]
