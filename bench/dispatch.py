"""Dispatch benchmark: 20,000 events through the webhook action to a local receiver.

Three processes: this one runs only the dispatcher (so its CPU time is the worker's), a
child runs the aiohttp receiver (it verifies nothing, it timestamps each ``webhook-id``),
and a child records events the way the poll engine does (``record_events`` in one
transaction per batch) and timestamps each commit. The run ends when every delivery is
``delivered`` in Postgres, i.e. durably recorded.

Prints deliveries per second (first commit to last delivery recorded), p50/p99 latency from
the commit of an event to the receiver getting it, and the worker's CPU. Uses
``DATABASE_URL`` if set, else a throwaway embedded Postgres.

    python bench/dispatch.py [--events 20000] [--batch 500] [--rate 0]
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


def producer_main(dsn: str, url: str, events: int, batch: int, rate: float, out: str) -> None:
    import asyncpg

    from connector.config import parse
    from connector.events import NewEvent, delivery_id, record_events

    config = parse(flows_yaml(url, 200), "bench.yaml", env={})
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
                        id=f"bench-{n:06d}",
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
    import asyncpg

    from connector.config import parse
    from connector.dispatch import Dispatcher
    from connector.egress import EgressPolicy, guarded_session

    config = parse(flows_yaml(url, concurrency), "bench.yaml", env={})
    pool = await asyncpg.create_pool(dsn, min_size=4, max_size=12)
    stop = asyncio.Event()
    async with guarded_session(EgressPolicy(["127.0.0.1/32"]), limit=concurrency) as http:
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
            done = await pool.fetchval("SELECT count(*) FROM deliveries WHERE state='delivered'")
            if done >= events:
                break
            if task.done():
                task.result()
            await asyncio.sleep(0.05)
        finished = time.time()
        cpu, wall = time.process_time() - cpu0, time.monotonic() - wall0
        stop.set()
        await task
    await pool.close()
    return {"finished": finished, "cpu": cpu, "wall": wall}


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


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=20_000)
    parser.add_argument("--batch", type=int, default=500, help="events per commit")
    parser.add_argument("--rate", type=float, default=0, help="events/s offered (0 = all)")
    parser.add_argument("--concurrency", type=int, default=200, help="webhooks in flight")
    args = parser.parse_args()

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    tmp = Path(tempfile.mkdtemp(prefix="bench-dispatch-"))
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
        asyncio.run(prepare(dsn))
        url = f"http://127.0.0.1:{ports.get(timeout=30)}/hook"
        committed_path = str(tmp / "committed.json")
        producer = ctx.Process(
            target=producer_main,
            args=(dsn, url, args.events, args.batch, args.rate, committed_path),
        )
        producer.start()
        result = asyncio.run(run_worker(dsn, url, args.events, args.concurrency))
        producer.join(60)
        import urllib.request

        with urllib.request.urlopen(url.replace("/hook", "/dump"), timeout=30):  # noqa: S310
            pass
        committed = json.loads(Path(committed_path).read_text())
        received = json.loads((tmp / "received.json").read_text())
    finally:
        rx.terminate()
        if embedded is not None:
            embedded.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)

    missing = set(committed) - set(received)
    latencies = [(received[k] - committed[k]) * 1000 for k in committed if k in received]
    span = result["finished"] - min(committed.values())
    print(f"events: {args.events}  batch: {args.batch}  offered: {args.rate or 'all at once'}/s")
    print(f"delivered and recorded: {len(received)}  missing: {len(missing)}")
    print(f"throughput: {args.events / span:,.0f} deliveries/s ({span:.2f} s)")
    print(
        f"commit→receipt latency: p50 {statistics.median(latencies):.0f} ms, "
        f"p99 {pct(latencies, 0.99):.0f} ms"
    )
    print(
        f"worker CPU: {result['cpu']:.2f} s over {result['wall']:.2f} s "
        f"({100 * result['cpu'] / result['wall']:.0f}% of one core), "
        f"{1e6 * result['cpu'] / args.events:.0f} µs per delivery"
    )
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
