"""Dispatch benchmark: the webhook action against a bare aiohttp client, in one run.

Three processes: this one runs only the dispatcher (so its CPU time is the worker's), a
child runs the aiohttp receiver (it verifies nothing, it timestamps each ``webhook-id``),
and a child records events the way the poll engine does (``record_events`` in one
transaction per batch) and timestamps each commit. A phase ends when every delivery is
``delivered`` in Postgres, i.e. durably recorded.

Three phases: the ceiling (a bare aiohttp client posting the same bodies to the same
receiver at the same concurrency: no database, no signing); a backlog (every event
committed at once: deliveries per second from the first commit to the last delivery
recorded, and worker CPU per delivery); and a paced load (``--paced-rate`` events/s in
commits of ``--paced-batch``: commit→receipt latency p50/p99). Prints the targets, met or
MISSED. Uses ``DATABASE_URL`` if set, else a throwaway embedded Postgres.

    python bench/dispatch.py [--events 20000] [--batch 500] [--paced-rate 1000] [--profile F]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a public test vector
FLOW = "bench"


def flows_yaml(url: str, concurrency: int) -> str:
    return f"""
connections:
  main: {{client_id: bench, client_secret: bench-secret}}
egress:
  allow_networks: [127.0.0.1/32]
flows:
  - name: {FLOW}
    trigger: {{type: sendpulse.subscriber_added, params: {{mailing_list_id: 1}}}}
    concurrency: {concurrency}
    actions:
      - type: webhook
        url: {url}
        secret: {SECRET}
"""


# -- the receiver (child process) -----------------------------------------------------------


def receiver_main(port_queue: Any, out_path: str) -> None:
    from aiohttp import web

    received: dict[str, float] = {}

    async def hook(request: web.Request) -> web.Response:
        await request.read()
        received.setdefault(request.headers["webhook-id"], time.time())
        return web.Response(text="ok")

    async def dump(_request: web.Request) -> web.Response:
        await asyncio.to_thread(Path(out_path).write_text, json.dumps(received))
        return web.Response(text=str(len(received)))

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/dump", dump)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, backlog=1024)
        await site.start()
        port_queue.put(runner.addresses[0][1])
        await asyncio.Event().wait()

    asyncio.run(main())


# -- the producer (child process) -----------------------------------------------------------


def producer_main(
    dsn: str, url: str, events: int, batch: int, rate: float, out: str, prefix: str
) -> None:
    import asyncpg

    from connector.catalog import CATALOG
    from connector.config import parse
    from connector.events import NewEvent, delivery_id, record_events

    config = parse(flows_yaml(url, 200), CATALOG, "bench.yaml", env={})
    flow = config.flows[0]

    async def main() -> dict[str, float]:
        committed: dict[str, float] = {}
        conn = await asyncpg.connect(dsn)
        started = time.monotonic()
        try:
            for first in range(0, events, batch):
                if rate > 0:
                    due = started + first / rate
                    await asyncio.sleep(max(0.0, due - time.monotonic()))
                chunk = [
                    NewEvent(
                        id=f"{prefix}-{n:06d}",
                        item_key=f"user{n}@example.com",
                        payload={"email": f"user{n}@example.com", "variables": {"n": n}},
                    )
                    for n in range(first, min(first + batch, events))
                ]
                async with conn.transaction():
                    await record_events(conn, flow, chunk)
                at = time.time()
                for event in chunk:
                    committed[str(delivery_id(event.id, 0))] = at
        finally:
            await conn.close()
        return committed

    Path(out).write_text(json.dumps(asyncio.run(main())))


# -- the worker (this process) --------------------------------------------------------------


async def run_worker(dsn: str, url: str, events: int, concurrency: int) -> dict[str, float]:
    from connector.catalog import CATALOG
    from connector.config import parse
    from connector.db.pool import pool as open_pool
    from connector.dispatch import Dispatcher
    from connector.egress import EgressPolicy, guarded_session

    config = parse(flows_yaml(url, concurrency), CATALOG, "bench.yaml", env={})
    stop = asyncio.Event()
    # The daemon's own pool (it releases connections without asyncpg's reset query).
    async with (
        open_pool(dsn, min_size=4, max_size=12) as pool,
        guarded_session(EgressPolicy(["127.0.0.1/32"]), limit=concurrency) as http,
    ):
        worker = Dispatcher(
            pool,
            config,
            http=http,
            worker_id="bench",
            batch_size=200,
            max_in_flight=concurrency,
            idle_wait=0.2,
        )
        cpu0, wall0 = time.process_time(), time.monotonic()
        task = asyncio.create_task(worker.run(stop))
        while True:
            # Rarely, as it runs in the measured process; the phase's end is read from the
            # rows afterwards, not from when this look saw it.
            done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
            if done >= events:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.25)
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        stop.set()
        await task
        finished = await pool.fetchval(
            "SELECT extract(epoch FROM max(delivered_at)) FROM deliveries"
        )
    return {"finished": float(finished), "cpu": cpu, "wall": wall}


async def bare_ceiling(url: str, events: int, concurrency: int) -> dict[str, float]:
    """The same bodies to the same receiver at the same concurrency: no database, no signing."""
    import aiohttp

    from actions.webhook import body_for
    from connector.plugins import StoredEvent

    now = datetime.now(UTC)
    bodies = [
        body_for(
            StoredEvent(
                id=f"bare-{n:06d}",
                flow=FLOW,
                trigger="sendpulse.subscriber_added",
                item_key=f"user{n}@example.com",
                payload={"email": f"user{n}@example.com", "variables": {"n": n}},
                occurred_at=None,
                created_at=now,
            )
        )
        for n in range(events)
    ]
    queue = iter(enumerate(bodies))
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def sender() -> None:
            for n, body in queue:
                headers = {"webhook-id": f"bare-{n:06d}", "content-type": "application/json"}
                async with http.post(url, data=body, headers=headers) as response:
                    await response.text()
                    if response.status != 200:
                        raise RuntimeError(f"the receiver answered {response.status}")

        cpu0, wall0 = time.process_time(), time.monotonic()
        await asyncio.gather(*(sender() for _ in range(concurrency)))
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
    return {"rate": events / wall, "cpu": cpu, "wall": wall}


async def prepare(dsn: str) -> None:
    import asyncpg

    from connector.db import migrate
    from connector.db.pool import ensure_database

    await ensure_database(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await migrate.migrate(conn)
        await conn.execute("TRUNCATE events, deliveries, delivery_attempts CASCADE")
    finally:
        await conn.close()


async def _statements(dsn: str, events: int | None) -> bool:
    """Reset the statement counts (``events`` None), or print them per event."""
    import asyncpg

    from bench import _pgstat

    conn = await asyncpg.connect(dsn)
    try:
        if events is None:
            return await _pgstat.enable(conn)
        for line in await _pgstat.top(conn, events):
            print("  " + line)
        return True
    finally:
        await conn.close()


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Phase:
    name: str
    events: int
    batch: int
    rate: float
    delivered: int
    missing: int
    throughput: float
    span: float
    p50: float
    p99: float
    cpu: float
    wall: float

    @property
    def cpu_per_delivery(self) -> float:
        return self.cpu / self.events


def run_phase(
    ctx: Any,
    dsn: str,
    url: str,
    tmp: Path,
    name: str,
    events: int,
    batch: int,
    rate: float,
    concurrency: int,
    profile: str | None = None,
    statements: bool = False,
) -> Phase:
    import urllib.request

    asyncio.run(prepare(dsn))
    if statements and not asyncio.run(_statements(dsn, None)):
        print("pg_stat_statements: not available on this server (see bench/README.md)")
        statements = False
    committed_path = str(tmp / f"committed-{name}.json")
    producer = ctx.Process(
        target=producer_main,
        args=(dsn, url, events, batch, rate, committed_path, name),
    )
    producer.start()
    if profile:
        import cProfile

        # CPU time: a wall-clock profile on a shared machine charges descheduled time too.
        with cProfile.Profile(time.process_time) as prof:
            result = asyncio.run(run_worker(dsn, url, events, concurrency))
        prof.dump_stats(profile)
    else:
        result = asyncio.run(run_worker(dsn, url, events, concurrency))
    producer.join(60)
    if statements:
        print(f"-- statements of the {name} phase (worker and producer), per event:")
        asyncio.run(_statements(dsn, events))
    with urllib.request.urlopen(url.replace("/hook", "/dump"), timeout=30):  # noqa: S310
        pass
    committed = json.loads(Path(committed_path).read_text())
    received = json.loads((tmp / "received.json").read_text())
    missing = set(committed) - set(received)
    latencies = [(received[k] - committed[k]) * 1000 for k in committed if k in received]
    span = result["finished"] - min(committed.values())
    return Phase(
        name=name,
        events=events,
        batch=batch,
        rate=rate,
        delivered=len(committed) - len(missing),
        missing=len(missing),
        throughput=events / span,
        span=span,
        p50=statistics.median(latencies),
        p99=pct(latencies, 0.99),
        cpu=result["cpu"],
        wall=result["wall"],
    )


def show(phase: Phase) -> None:
    offered = f"{phase.rate:g}/s" if phase.rate else "all at once"
    print(f"-- {phase.name}: {phase.events} events, commits of {phase.batch}, offered {offered}")
    print(f"  delivered and recorded: {phase.delivered}  missing: {phase.missing}")
    print(f"  throughput: {phase.throughput:,.0f} deliveries/s ({phase.span:.2f} s)")
    print(f"  commit→receipt latency: p50 {phase.p50:.0f} ms, p99 {phase.p99:.0f} ms")
    print(
        f"  worker CPU: {phase.cpu:.2f} s over {phase.wall:.2f} s "
        f"({100 * phase.cpu / phase.wall:.0f}% of one core), "
        f"{1e6 * phase.cpu_per_delivery:.0f} µs per delivery"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000, help="backlog and ceiling")
    parser.add_argument("--batch", type=int, default=500, help="events per commit (backlog)")
    parser.add_argument("--concurrency", type=int, default=200, help="webhooks in flight")
    parser.add_argument("--paced-rate", type=float, default=1000, help="events/s offered")
    parser.add_argument("--paced-events", type=int, default=10_000)
    parser.add_argument("--paced-batch", type=int, default=50, help="events per commit (paced)")
    parser.add_argument("--profile", metavar="FILE", help="cProfile the backlog's worker there")
    parser.add_argument(
        "--statements",
        action="store_true",
        help="pg_stat_statements of the backlog (a DATABASE_URL server preloading it)",
    )
    args = parser.parse_args()

    from connector import logging as connector_logging

    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
    # The daemon's own logging (JSON, INFO: a line per delivery) so that its cost is counted.
    log_stream = (tmp / "worker.log").open("w")
    connector_logging.configure(level="INFO", fmt="json", stream=log_stream)
    embedded = None
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        from connector.db.embedded import EmbeddedPostgres

        os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach its data folder
        embedded = EmbeddedPostgres(tmp / "pg")
        dsn = embedded.start()
    ctx = multiprocessing.get_context("spawn")
    ports = ctx.Queue()
    rx = ctx.Process(target=receiver_main, args=(ports, str(tmp / "received.json")), daemon=True)
    rx.start()
    try:
        url = f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
        ceiling = asyncio.run(bare_ceiling(url, args.events, args.concurrency))
        backlog = run_phase(
            ctx,
            dsn,
            url,
            tmp,
            "backlog",
            args.events,
            args.batch,
            0,
            args.concurrency,
            args.profile,
            args.statements,
        )
        paced = run_phase(
            ctx,
            dsn,
            url,
            tmp,
            "paced",
            args.paced_events,
            args.paced_batch,
            args.paced_rate,
            args.concurrency,
        )
    finally:
        rx.terminate()
        if embedded is not None:
            embedded.stop(mode="immediate")
        log_stream.close()
        shutil.rmtree(tmp, ignore_errors=True)

    print(
        f"-- ceiling: a bare aiohttp client, the same {args.events} bodies to the same "
        f"receiver, {args.concurrency} in flight, no database, no signing"
    )
    print(
        f"  throughput: {ceiling['rate']:,.0f} posts/s ({ceiling['wall']:.2f} s); client CPU "
        f"{1e6 * ceiling['cpu'] / args.events:.0f} µs per post"
    )
    show(backlog)
    show(paced)
    ratio = backlog.throughput / ceiling["rate"]
    per = 1e6 * backlog.cpu_per_delivery
    print("targets:")
    print(
        f"  backlog throughput >= 0.6 of the ceiling: {'met' if ratio >= 0.6 else 'MISSED'} "
        f"({ratio:.2f})"
    )
    print(f"  worker CPU <= 150 µs per delivery: {'met' if per <= 150 else 'MISSED'} ({per:.0f})")
    print(
        f"  p99 commit→receipt < 100 ms at {args.paced_rate:g}/s: "
        f"{'met' if paced.p99 < 100 else 'MISSED'} ({paced.p99:.0f} ms)"
    )
    return 0 if not backlog.missing and not paced.missing else 1


if __name__ == "__main__":
    sys.exit(main())
