"""Workers as processes: several on one database, kill -9, signals, reload, a Postgres restart.

Each test starts real ``connector run`` processes against a throwaway database. The SendPulse
sandbox and the webhook receiver run in the test's own event loop, so every wait here is an
async bounded poll ("until X, at most N seconds"), never a sleep that blocks them.
"""

from __future__ import annotations

import asyncio
import json
import signal
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
from aiohttp import web
from prometheus_client.parser import text_string_to_metric_families

from connector.db.embedded import EmbeddedPostgres
from connector.errors import SignatureInvalid
from connector.sandbox.harness import Sandbox, start_sandbox
from connector.webhook_signing import generate_secret, verify
from tests.e2e.conftest import (
    SECRET_KEY,
    Daemon,
    cli_env,
    eventually,
    free_port,
    log_records,
    wait_exit,
)
from tests.e2e.conftest import write_flows as write_flow_file

WEBHOOK_SECRET = generate_secret()
# Short leases so that a dead worker's connections and deliveries move on within seconds.
LEASE_TTL = "6"
DELIVERY_LEASE = "10"


class Receiver:
    """The far end of the webhook action: verifies each POST, records it, answers 200."""

    def __init__(self) -> None:
        self.arrived: list[tuple[str, dict[str, Any]]] = []  # (webhook-id, body), on arrival
        self.answered: list[str] = []  # webhook-ids, once the answer is about to go out
        self.rejected = 0
        self.in_flight = 0
        self.delay = 0.0
        self.hold: asyncio.Event | None = None  # while set to an unset event, answer nothing

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify([WEBHOOK_SECRET], request.headers, body, now=datetime.now(UTC))
        except SignatureInvalid:
            self.rejected += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.arrived.append((msg_id, json.loads(body)))
        self.in_flight += 1
        try:
            if self.hold is not None:
                await self.hold.wait()
            elif self.delay:
                await asyncio.sleep(self.delay)
        finally:
            self.in_flight -= 1
        self.answered.append(msg_id)
        return web.json_response({"ok": True})

    def ids(self) -> Counter[str]:
        return Counter(msg_id for msg_id, _ in self.arrived)


@pytest.fixture
async def sb() -> AsyncIterator[Sandbox]:
    async with start_sandbox(rate_limit=10.0) as sandbox:
        yield sandbox


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    rec = Receiver()
    app = web.Application()
    app.router.add_post("/hook", rec.handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield rec, f"http://127.0.0.1:{port}/hook"
    finally:
        if rec.hold is not None:
            rec.hold.set()
        await runner.cleanup()


# -- helpers ---------------------------------------------------------------------------------


def write_flows(
    path: Path,
    sb: Sandbox,
    url: str,
    flows: dict[str, tuple[str, int]],
    *,
    start: str = "now",
) -> Path:
    return write_flow_file(path, sb, url, flows, secret=WEBHOOK_SECRET, start=start)


def start_worker(
    daemons: list[Daemon],
    tmp_path: Path,
    config: Path,
    database: str,
    worker_id: str,
    **env: str,
) -> Daemon:
    settings = {
        "DATABASE_URL": database,
        "CONNECTOR_SECRET_KEY": SECRET_KEY,
        "CONNECTOR_HOME": str(tmp_path / "home"),
        "CONNECTOR_WORKER_ID": worker_id,
        "CONNECTOR_LEASE_TTL": LEASE_TTL,
        "CONNECTOR_DELIVERY_LEASE": DELIVERY_LEASE,
        "PORT": "0",
        **env,
    }
    daemon = Daemon(
        ["run", "--config", str(config)], cli_env(**settings), tmp_path / f"{worker_id}.log"
    )
    daemons.append(daemon)
    return daemon


async def started(daemon: Daemon, within: float = 30.0) -> None:
    await eventually(
        lambda: '"worker_started"' in daemon.output() or daemon.proc.poll() is not None,
        "worker_started",
        within,
    )
    assert daemon.proc.poll() is None, daemon.output()


def events_of(daemon: Daemon) -> list[str]:
    return [record["event"] for record in log_records(daemon.output())]


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    # A connection per query: some tests restart the server under the test, too.
    conn = await asyncpg.connect(dsn)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    rows = await fetch(dsn, sql, *args)
    return rows[0][0] if rows else None


async def baselines_done(dsn: str, flows: int) -> bool:
    done = await fetchval(dsn, "SELECT count(*) FROM flow_states WHERE baseline_done")
    return int(done) >= flows


async def polled_since(dsn: str, flow: str, since: datetime, worker: str | None = None) -> bool:
    runs = await fetchval(
        dsn,
        "SELECT count(*) FROM poll_runs WHERE flow_name = $1 AND started_at > $2"
        " AND error IS NULL AND ($3::text IS NULL OR worker = $3)",
        flow,
        since,
        worker,
    )
    return int(runs) > 0


async def deliveries(dsn: str) -> list[asyncpg.Record]:
    return await fetch(
        dsn,
        "SELECT d.id::text AS id, d.state, d.attempt, e.id AS event_id, e.flow_name,"
        " e.item_key FROM deliveries d JOIN events e ON e.id = d.event_id ORDER BY d.seq",
    )


def assert_no_overlap_across_workers(runs: list[asyncpg.Record]) -> None:
    """Polls of one connection by different workers never overlap in time."""
    by_connection: dict[str, list[asyncpg.Record]] = defaultdict(list)
    for run in runs:
        by_connection[run["connection_id"]].append(run)
    for connection, rows in by_connection.items():
        for i, a in enumerate(rows):
            for b in rows[i + 1 :]:
                if a["worker"] == b["worker"]:
                    continue  # flows sharing a connection in one worker share its lease
                apart = a["finished_at"] <= b["started_at"] or b["finished_at"] <= a["started_at"]
                assert apart, f"{connection}: {dict(a)} overlaps {dict(b)}"


# -- several workers -------------------------------------------------------------------------


async def test_three_workers_one_killed_lose_and_double_nothing(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    # Slow enough that a kill lands in the middle of things: each delivery takes a second,
    # each API call a tenth.
    rec.delay = 1.0
    sb.configure(latency=0.1)
    connection_of = {"f1": "c1", "f2": "c2", "f3": "c3", "f4": "c4", "f5": "c1", "f6": "c3"}
    books = {flow: sb.state.add_book(f"List {flow}").id for flow in connection_of}
    config = write_flows(
        tmp_path / "flows.yaml",
        sb,
        url,
        {flow: (connection_of[flow], books[flow]) for flow in connection_of},
    )
    workers = {
        wid: start_worker(daemons, tmp_path, config, database, wid) for wid in ("w1", "w2", "w3")
    }
    for daemon in workers.values():
        await started(daemon)
    await eventually(lambda: baselines_done(database, 6), "every flow's first poll", 30)

    # Subscribers keep arriving, one every quarter second, round-robin over the lists.
    added: dict[str, list[str]] = defaultdict(list)
    stop_changes = asyncio.Event()

    async def keep_changing() -> None:
        n = 0
        while not stop_changes.is_set():
            flow = list(books)[n % len(books)]
            email = f"s{n}@example.com"
            sb.state.add_subscriber(books[flow], email)
            added[flow].append(email)
            n += 1
            try:
                await asyncio.wait_for(stop_changes.wait(), 0.25)
            except TimeoutError:
                pass

    changer = asyncio.create_task(keep_changing())
    try:
        # The victim owns connections and is in the middle of a delivery it claimed less
        # than half a second ago (the receiver takes a second to answer).
        async def busy_owner() -> tuple[str, list[str]] | None:
            rows = await fetch(
                database,
                "SELECT l.owner, array_agg(substr(l.resource, 5) ORDER BY l.resource) AS owned"
                " FROM leases l WHERE l.resource LIKE 'own:%' AND l.expires_at > now()"
                " AND EXISTS (SELECT 1 FROM deliveries d WHERE d.state = 'running'"
                " AND d.lease_owner = l.owner AND d.lease_expires_at > now() + $1::interval)"
                " GROUP BY l.owner ORDER BY count(*) DESC",
                timedelta(seconds=float(DELIVERY_LEASE) - 0.5),
            )
            return (rows[0]["owner"], list(rows[0]["owned"])) if rows else None

        victim, victim_owned = await eventually(
            busy_owner, "a connection owner to be mid-delivery", 40, interval=0.05
        )
        workers[victim].proc.kill()
        killed_at = datetime.now(UTC)
        assert await wait_exit(workers[victim].proc, 10) == -signal.SIGKILL
        survivors = [wid for wid in workers if wid != victim]
        orphaned = {
            r["id"]
            for r in await fetch(
                database,
                "SELECT id::text FROM deliveries WHERE state = 'running' AND lease_owner = $1",
                victim,
            )
        }
        assert orphaned

        # Every connection, the victim's included, is polled again by a survivor.
        async def all_polled_again() -> bool:
            rows = await fetch(
                database,
                "SELECT DISTINCT connection_id FROM poll_runs"
                " WHERE started_at > $1 AND worker = ANY($2::text[]) AND error IS NULL",
                killed_at,
                survivors,
            )
            return {r["connection_id"] for r in rows} == {"c1", "c2", "c3", "c4"}

        await eventually(all_polled_again, "survivors to poll every connection", 45)
    finally:
        stop_changes.set()
        await changer
    expected = {(flow, email) for flow, emails in added.items() for email in emails}

    async def settled() -> bool:
        rows = await deliveries(database)
        return len(rows) >= len(expected) and all(r["state"] == "delivered" for r in rows)

    await eventually(settled, f"{len(expected)} events to be delivered", 45)
    rows = await deliveries(database)
    # No event lost, none doubled: exactly one event (and one delivery) per subscriber added.
    per_item = Counter((r["flow_name"], r["item_key"]) for r in rows)
    assert set(per_item) == expected
    assert max(per_item.values()) == 1
    assert len({r["event_id"] for r in rows}) == len(rows)
    # Every delivery reached the receiver; a repeat (after a kill) reuses its webhook-id.
    received = rec.ids()
    delivery_ids = {r["id"] for r in rows}
    assert delivery_ids <= set(received)
    assert set(received) <= delivery_ids
    event_of = {r["id"]: r["event_id"] for r in rows}
    assert all(body["event_id"] == event_of[msg_id] for msg_id, body in rec.arrived)
    assert rec.rejected == 0
    # What the victim had claimed was not lost with it: a survivor ran it again.
    attempts = {r["id"]: r["attempt"] for r in rows}
    assert all(attempts[d] >= 2 for d in orphaned), {d: attempts[d] for d in orphaned}
    # The victim really held connections, and the survivors took them over once its leases
    # lapsed: within one lease period and one heartbeat of the kill (bounded at two periods).
    taken_over: dict[str, float] = {}
    for wid in survivors:
        for r in log_records(workers[wid].output()):
            at = datetime.fromisoformat(r["timestamp"])
            if r["event"] == "connection_acquired" and at > killed_at:
                after = (at - killed_at).total_seconds()
                taken_over[r["connection"]] = min(after, taken_over.get(r["connection"], after))
    assert victim_owned
    assert set(victim_owned) <= set(taken_over)
    assert max(taken_over[c] for c in victim_owned) <= 2 * float(LEASE_TTL), taken_over
    runs = await fetch(
        database,
        "SELECT connection_id, worker, started_at, finished_at FROM poll_runs"
        " ORDER BY connection_id, started_at",
    )
    assert {r["worker"] for r in runs} <= set(workers)
    assert_no_overlap_across_workers(runs)


# -- signals ---------------------------------------------------------------------------------


async def test_sigterm_lets_a_slow_delivery_finish_then_exits_0(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.delay = 2.0
    book = sb.state.add_book("Slow").id
    sb.state.add_subscriber(book, "slow@example.com")
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"slow": ("c1", book)}, start="all")
    worker = start_worker(daemons, tmp_path, config, database, "w1")
    await started(worker)
    await eventually(lambda: rec.in_flight == 1, "the delivery to reach the receiver", 20)

    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 20) == 0, worker.output()

    rows = await deliveries(database)
    assert [(r["item_key"], r["state"], r["attempt"]) for r in rows] == [
        ("slow@example.com", "delivered", 1)
    ]
    assert rec.answered == [rows[0]["id"]]
    events = events_of(worker)
    assert events.index("worker_stopping") < events.index("trigger_delivered")
    assert events[-1] == "worker_stopped"
    leases = await fetchval(database, "SELECT count(*) FROM leases WHERE owner = 'w1'")
    assert leases == 0


async def test_a_second_sigterm_exits_at_once_and_the_delivery_is_retried(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    rec.hold = asyncio.Event()
    book = sb.state.add_book("Stuck").id
    sb.state.add_subscriber(book, "stuck@example.com")
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"stuck": ("c1", book)}, start="all")
    worker = start_worker(daemons, tmp_path, config, database, "w1", CONNECTOR_DELIVERY_LEASE="4")
    await started(worker)
    await eventually(lambda: rec.in_flight == 1, "the delivery to reach the receiver", 20)

    worker.proc.send_signal(signal.SIGTERM)
    await eventually(lambda: '"worker_stopping"' in worker.output(), "worker_stopping", 10)
    worker.proc.send_signal(signal.SIGTERM)
    # The drain would wait 30 s for the receiver, which never answers: this exit skips it.
    assert await wait_exit(worker.proc, 5) == 1
    assert "worker_killed" in events_of(worker)
    assert "worker_stopped" not in events_of(worker)
    [row] = await deliveries(database)
    assert (row["state"], row["attempt"]) == ("running", 1)

    # The cut-off attempt is not lost: another worker re-runs it once its lease runs out.
    rec.hold.set()
    again = start_worker(daemons, tmp_path, config, database, "w2", CONNECTOR_DELIVERY_LEASE="4")
    await started(again)

    async def redelivered() -> bool:
        [now] = await deliveries(database)
        return bool(now["state"] == "delivered")

    await eventually(redelivered, "the delivery to be re-run", 30)
    [row] = await deliveries(database)
    assert row["attempt"] == 2
    assert rec.ids() == Counter({row["id"]: 2})


async def test_sighup_adds_a_flow_and_an_invalid_file_keeps_the_old_ones(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    first, second = sb.state.add_book("First").id, sb.state.add_book("Second").id
    sb.state.add_subscriber(second, "new@example.com")
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"first": ("c1", first)}, start="all")
    worker = start_worker(daemons, tmp_path, config, database, "w1")
    await started(worker)
    began = datetime.now(UTC)
    await eventually(lambda: polled_since(database, "first", began), "the first flow's poll", 30)

    # A valid file with one more flow, on a connection the worker has not seen yet.
    flows = {"first": ("c1", first), "second": ("c2", second)}
    write_flows(config, sb, url, flows, start="all")
    reloaded = datetime.now(UTC)
    worker.proc.send_signal(signal.SIGHUP)
    await eventually(lambda: '"config_reloaded"' in worker.output(), "config_reloaded", 20)
    await eventually(
        lambda: polled_since(database, "second", reloaded), "the added flow to poll", 30
    )
    await eventually(lambda: len(rec.answered) == 1, "the added flow to deliver", 30)
    assert rec.arrived[0][1]["flow"] == "second"

    # An invalid file: the reload is refused with the reason, and both flows keep polling.
    config.write_text(config.read_text().replace("sendpulse.subscriber_added", "sendpulse.nope"))
    worker.proc.send_signal(signal.SIGHUP)
    await eventually(
        lambda: '"config_reload_failed"' in worker.output(), "config_reload_failed", 20
    )
    refused = datetime.now(UTC)
    [failure] = [r for r in log_records(worker.output()) if r["event"] == "config_reload_failed"]
    assert any("sendpulse.nope" in problem for problem in failure["problems"])

    async def both_polled_again() -> bool:
        return all([await polled_since(database, flow, refused) for flow in ("first", "second")])

    await eventually(both_polled_again, "both old flows to poll again", 30)
    assert worker.proc.poll() is None
    assert events_of(worker).count("config_reloaded") == 1
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 20) == 0, worker.output()[-4000:]


# -- a Postgres restart ----------------------------------------------------------------------


async def test_postgres_restart_under_a_running_worker_loses_nothing(
    private_postgres: EmbeddedPostgres,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    dsn = private_postgres.dsn()
    book = sb.state.add_book("Outage").id
    sb.state.add_subscriber(book, "before@example.com")
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"outage": ("c1", book)}, start="all")
    port = free_port()
    worker = start_worker(daemons, tmp_path, config, dsn, "w1", ADMIN_PORT=str(port))
    await started(worker)
    await eventually(lambda: len(rec.answered) == 1, "the first delivery", 30)
    readyz = f"http://127.0.0.1:{port}/readyz"
    assert (await get(readyz))[0] == 200

    await asyncio.to_thread(private_postgres.stop)
    await eventually(
        lambda: '"database_unavailable"' in worker.output(), "database_unavailable", 30
    )
    status, body = await get(readyz)
    assert status == 503, body
    assert json.loads(body)["checks"]["database"].startswith("unavailable")
    sb.state.add_subscriber(book, "during@example.com")
    await asyncio.to_thread(private_postgres.start)
    back = datetime.now(UTC)
    sb.state.add_subscriber(book, "after@example.com")

    async def ready() -> bool:
        return (await get(readyz))[0] == 200

    await eventually(ready, "/readyz to answer 200 again", 30)

    await eventually(lambda: polled_since(dsn, "outage", back), "a poll after the restart", 45)

    async def all_delivered() -> bool:
        rows = await deliveries(dsn)
        return len(rows) >= 3 and all(r["state"] == "delivered" for r in rows)

    await eventually(all_delivered, "every subscriber to be delivered", 45)
    rows = await deliveries(dsn)
    assert sorted(r["item_key"] for r in rows) == [
        "after@example.com",
        "before@example.com",
        "during@example.com",
    ]
    assert {r["id"] for r in rows} == set(rec.ids())
    assert worker.proc.poll() is None
    events = events_of(worker)
    assert events.count("database_unavailable") == 1
    assert events.index("database_unavailable") < events.index("database_available")


async def test_worker_stops_cleanly_after_a_postgres_restart(
    private_postgres: EmbeddedPostgres,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    _rec, url = receiver
    book = sb.state.add_book("Restart").id
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"restart": ("c1", book)})
    dsn = private_postgres.dsn()
    worker = start_worker(daemons, tmp_path, config, dsn, "w1")
    await started(worker)
    await eventually(lambda: baselines_done(dsn, 1), "the first poll", 30)
    await asyncio.to_thread(private_postgres.restart)
    back = datetime.now(UTC)
    await eventually(lambda: polled_since(dsn, "restart", back), "a poll after the restart", 30)
    worker.proc.send_signal(signal.SIGTERM)
    assert await wait_exit(worker.proc, 20) == 0, worker.output()[-3000:]


# -- the web server --------------------------------------------------------------------------


def scrape(text: str) -> dict[str, float]:
    """Sum of each metric's samples (``_total`` names kept as the family plus ``_total``)."""
    sums: dict[str, float] = defaultdict(float)
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            sums[sample.name] += sample.value
    return sums


async def get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        return response.status, await response.text()


async def _metrics_worker(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    url: str,
) -> str:
    """A worker whose first poll delivers one subscriber; returns its admin listener's URL."""
    port = free_port()
    book = sb.state.add_book("Metrics").id
    sb.state.add_subscriber(book, "counted@example.com")
    config = write_flows(tmp_path / "flows.yaml", sb, url, {"metered": ("c1", book)}, start="all")
    worker = start_worker(daemons, tmp_path, config, database, "w1", ADMIN_PORT=str(port))
    await started(worker)
    return f"http://127.0.0.1:{port}"


async def test_readyz_and_metrics_move_on_a_running_worker(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    base = await _metrics_worker(database, tmp_path, daemons, sb, url)
    status, body = await get(f"{base}/readyz")
    assert status == 200, body
    assert json.loads(body)["checks"] == {
        "database": "ok",
        "migrations": "ok",
        "scheduler": "ok",
    }
    assert (await get(f"{base}/healthz"))[0] == 200

    async def metrics() -> dict[str, float]:
        status, text = await get(f"{base}/metrics")
        assert status == 200
        return scrape(text)

    before = await metrics()
    assert before["connector_leases_held"] == 1
    await eventually(lambda: len(rec.answered) == 1, "the delivery", 30)

    async def moved() -> bool:
        now = await metrics()
        return (
            now["connector_polls_total"] > before["connector_polls_total"]
            and now["connector_events_created_total"] == 1
        )

    await eventually(moved, "the poll and event counters to grow", 30)


async def test_delivery_and_api_metrics_count_what_happened(
    database: str,
    tmp_path: Path,
    daemons: list[Daemon],
    sb: Sandbox,
    receiver: tuple[Receiver, str],
) -> None:
    rec, url = receiver
    base = await _metrics_worker(database, tmp_path, daemons, sb, url)
    await eventually(lambda: len(rec.answered) == 1, "the delivery", 30)

    async def recorded() -> bool:
        rows = await deliveries(database)
        return bool(rows) and all(r["state"] == "delivered" for r in rows)

    await eventually(recorded, "the delivery to be recorded", 10)
    status, text = await get(f"{base}/metrics")
    assert status == 200
    sums = scrape(text)
    assert sums["connector_deliveries_total"] >= 1
    assert sums["connector_delivery_latency_seconds_count"] >= 1
    assert sums["connector_api_requests_total"] >= 1
