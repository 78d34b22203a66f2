"""Capacity benchmark: how many flows one machine keeps on schedule, in compressed time.

N flows (``sendpulse.subscriber_added``, each on its own mailing list of 50 subscribers, ten
flows per connection) run at ``every: 10s`` instead of the default 5 minutes, against a
sandbox child process with 20 ms latency and a limit of 3 requests/s per connection. A
changer in the sandbox adds a subscriber to about 5 % of the lists per interval, spread
evenly, so most polls are quiet and some find one new subscriber. Worker child processes
run the daemon's real scheduler (``FlowScheduler``, APScheduler) and poll path
(``Worker._poll``) on one Postgres, with the daemon's JSON logging at INFO; dispatching is
left out, so the figures are the polling's.

Each step runs a warm-up (tokens, baselines, the ownership of connections settling between
workers) and then a measured window. Prints, per step: polls/s sustained against the
schedule's polls/s, lateness p50/p99 (a poll's actual start minus its scheduled start, with
the scheduler's jitter), runs the scheduler dropped (missed, or still running), CPU of the
workers and of Postgres, answers 429, the max/mean ratio of polls started per second over
the window, and the flows at ``every: 5m`` this rate stands for. N is raised until polls fall
behind (p99 lateness over 1 s, a dropped run, or under 90 % of the scheduled rate; the
window is a whole number of intervals, so that every flow is counted as often).

    python bench/capacity.py [--flows 1000,2000,4000] [--workers 1,2] [--window 40]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench._pgcpu import postgres_cpu  # noqa: E402 - after the path is set

RATE = 3.0
LATENCY = 0.020
EVERY = 10.0
PER_CONNECTION = 10
SUBSCRIBERS = 50
CHANGED = 0.05
PRODUCTION_EVERY = 300.0
SECRET = "bench-secret"  # noqa: S105 - the sandbox's throwaway client secret
LATE = 1.0  # p99 lateness above this: behind
TARGET_FLOWS = 100_000
TARGET_P99 = 5.0
TARGET_SPREAD = 1.5


def client_id(n: int) -> str:
    return f"cap-{n:05d}"


# -- the sandbox (child process) ------------------------------------------------------------


def sandbox_main(pipe: Any, flows: int) -> None:
    from connector.sandbox.harness import start_sandbox

    async def changer(state: Any, books: list[int], stop: asyncio.Event) -> None:
        # About CHANGED of the lists get a new subscriber per interval, spread evenly.
        rng = random.Random(7)
        per_tick = len(books) * CHANGED / EVERY / 10
        owed, n = 0.0, 0
        while not stop.is_set():
            await asyncio.sleep(0.1)
            owed += per_tick
            while owed >= 1:
                owed -= 1
                n += 1
                state.add_subscriber(rng.choice(books), f"new{n}@example.com", webhook=False)

    async def main() -> None:
        async with start_sandbox(rate_limit=RATE, latency=LATENCY) as sb:
            books = []
            for c in range((flows + PER_CONNECTION - 1) // PER_CONNECTION):
                sb.add_client(client_id(c), SECRET)
            for f in range(flows):
                book = sb.state.add_book(f"List {f}")
                books.append(book.id)
                for i in range(SUBSCRIBERS):
                    sb.state.add_subscriber(book.id, f"s{i}.l{f}@example.com", webhook=False)
            stop = asyncio.Event()
            task: asyncio.Task[None] | None = None
            pipe.send((sb.base_url, books))
            while True:
                command, since = await asyncio.to_thread(pipe.recv)
                if command == "count":
                    pipe.send(len(sb.requests()))
                elif command == "statuses":
                    pipe.send(dict(Counter(r.status for r in sb.requests()[since:])))
                elif command == "cpu":
                    pipe.send(time.process_time())
                elif command == "change":
                    task = asyncio.create_task(changer(sb.state, books, stop))
                    pipe.send(None)
                else:
                    stop.set()
                    if task is not None:
                        await task
                    return

    asyncio.run(main())


def flows_yaml(base_url: str, books: list[int]) -> str:
    connections = (len(books) + PER_CONNECTION - 1) // PER_CONNECTION
    lines = ["egress:", "  allow_networks: [127.0.0.1/32]", "connections:"]
    for c in range(connections):
        lines += [
            f"  {client_id(c)}:",
            f"    client_id: {client_id(c)}",
            f"    client_secret: {SECRET}",
            f"    base_url: {base_url}",
            f"    rate_limit: {RATE:g}/s",
        ]
    lines.append("flows:")
    for f, book in enumerate(books):
        lines += [
            f"  - name: list-{f:05d}",
            f"    every: {EVERY:g}s",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            f"      connection: {client_id(f // PER_CONNECTION)}",
            f"      params: {{mailing_list_id: {book}}}",
            "    actions: [{type: log}]",
        ]
    return "\n".join(lines) + "\n"


# -- a worker (child process) ---------------------------------------------------------------


@dataclass
class WorkerFigures:
    starts: list[float]
    lateness: list[float]
    dropped: int
    cpu: float
    owned: int


def worker_main(
    pipe: Any, env: dict[str, str], yaml_text: str, warmup: float, window: float
) -> None:
    from connector import logging as connector_logging

    with open(os.devnull, "w") as sink:
        connector_logging.configure(level="INFO", fmt="json", stream=sink)
        pipe.send(asyncio.run(run_worker(env, yaml_text, warmup, window)))


async def run_worker(
    env: dict[str, str], yaml_text: str, warmup: float, window: float
) -> WorkerFigures:
    from apscheduler.events import (
        EVENT_JOB_MAX_INSTANCES,
        EVENT_JOB_MISSED,
        EVENT_JOB_SUBMITTED,
        JobExecutionEvent,
        JobSubmissionEvent,
    )

    from connector.catalog import CATALOG
    from connector.config import parse
    from connector.daemon import Worker, runtime
    from connector.scheduler import FlowScheduler

    config = parse(yaml_text, CATALOG, "capacity.yaml", env={})
    connection_of = {f.name: f.trigger.connection for f in config.flows}
    scheduled: dict[str, float] = {}
    starts: list[float] = []
    lateness: list[float] = []
    dropped = 0
    measuring = False
    async with runtime(env) as rt:
        worker = Worker(rt, config, port=None)

        async def timed(name: str) -> None:
            start = time.time()
            if measuring and worker.ownership.owns(connection_of[name]):
                starts.append(start)
                if name in scheduled:
                    lateness.append(start - scheduled[name])
            await worker._poll(name)

        def submitted(event: JobSubmissionEvent) -> None:
            scheduled[event.job_id] = event.scheduled_run_times[-1].timestamp()

        def skipped(event: JobExecutionEvent) -> None:
            nonlocal dropped
            if measuring and worker.ownership.owns(connection_of.get(event.job_id)):
                dropped += 1

        stop = asyncio.Event()
        await worker.providers.ensure_connections()
        await worker.ownership.tick()
        tasks = [
            asyncio.create_task(worker.ownership.run(stop)),
            asyncio.create_task(worker.poll_runs.run(stop)),
        ]
        scheduler = FlowScheduler(timed)
        scheduler._scheduler.add_listener(submitted, EVENT_JOB_SUBMITTED)
        scheduler._scheduler.add_listener(skipped, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)
        scheduler.start(config.flows)
        await asyncio.sleep(warmup)
        measuring = True
        cpu0 = time.process_time()
        await asyncio.sleep(window)
        measuring = False
        cpu = time.process_time() - cpu0
        owned = len(worker.ownership.owned)
        await scheduler.shutdown(5.0)
        stop.set()
        await asyncio.gather(*tasks)
    return WorkerFigures(starts, lateness, dropped, cpu, owned)


# -- one step -------------------------------------------------------------------------------


@dataclass
class Step:
    flows: int
    workers: int
    window: float
    polls: int
    lateness: list[float]
    dropped: int
    worker_cpu: float
    postgres_cpu: float | None
    sandbox_cpu: float
    too_many: int
    spread: float

    @property
    def scheduled_rate(self) -> float:
        return self.flows / EVERY

    @property
    def rate(self) -> float:
        return self.polls / self.window

    @property
    def p50(self) -> float:
        return pct(self.lateness, 0.5)

    @property
    def p99(self) -> float:
        return pct(self.lateness, 0.99)

    @property
    def behind(self) -> bool:
        return self.p99 > LATE or self.dropped > 0 or self.rate < 0.9 * self.scheduled_rate

    @property
    def at_five_minutes(self) -> int:
        return int(self.rate * PRODUCTION_EVERY)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def spread_of(starts: list[float], begin: float, window: float) -> float:
    """Max over mean of the polls started in each whole second of the window."""
    seconds = int(window)
    per_second = Counter(int(s - begin) for s in starts if 0 <= s - begin < seconds)
    counts = [per_second.get(i, 0) for i in range(seconds)]
    mean = statistics.fmean(counts) if counts else 0.0
    return max(counts) / mean if mean else float("nan")


def ask(pipe: Any, message: tuple[str, int]) -> Any:
    pipe.send(message)
    return pipe.recv()


def run_step(
    flows: int, workers: int, warmup: float, window: float, pg_dsn: str, pg_data: Path | None
) -> Step:
    import asyncpg
    from cryptography.fernet import Fernet

    ctx = multiprocessing.get_context("spawn")
    pipe, child_end = ctx.Pipe()
    sandbox = ctx.Process(target=sandbox_main, args=(child_end, flows), daemon=True)
    sandbox.start()
    tmp = Path(tempfile.mkdtemp(prefix="bench-capacity-"))
    database = f"bench_capacity_{os.getpid()}_{flows}_{workers}"
    try:
        if not pipe.poll(300):
            raise RuntimeError("the sandbox did not start")
        base_url, books = pipe.recv()
        yaml_text = flows_yaml(base_url, books)
        dsn = urlunsplit(urlsplit(pg_dsn)._replace(path=f"/{database}"))
        key = Fernet.generate_key().decode()
        procs, pipes = [], []
        for w in range(workers):
            env = {
                "DATABASE_URL": dsn,
                "CONNECTOR_HOME": str(tmp),
                "CONNECTOR_SECRET_KEY": key,
                "CONNECTOR_WORKER_ID": f"capacity-{w}",
            }
            mine, theirs = ctx.Pipe()
            proc = ctx.Process(target=worker_main, args=(theirs, env, yaml_text, warmup, window))
            procs.append(proc)
            pipes.append(mine)
            proc.start()
            if w == 0:
                # The first worker creates and migrates the database alone.
                time.sleep(3)
        ask(pipe, ("change", 0))
        time.sleep(warmup)
        seen = ask(pipe, ("count", 0))
        box0 = ask(pipe, ("cpu", 0))
        pg0 = postgres_cpu(pg_data) if pg_data else None
        begin = time.time()
        time.sleep(window)
        pg1 = postgres_cpu(pg_data) if pg_data else None
        box = ask(pipe, ("cpu", 0)) - box0
        statuses = ask(pipe, ("statuses", seen))
        figures: list[WorkerFigures] = [p.recv() for p in pipes]
        for proc in procs:
            proc.join(60)
        pipe.send(("stop", 0))
    finally:
        sandbox.join(10)
        sandbox.terminate()
        shutil.rmtree(tmp, ignore_errors=True)

    async def drop() -> None:
        conn = await asyncpg.connect(urlunsplit(urlsplit(pg_dsn)._replace(path="/postgres")))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        finally:
            await conn.close()

    asyncio.run(drop())
    starts = [s for f in figures for s in f.starts]
    return Step(
        flows=flows,
        workers=workers,
        window=window,
        polls=len(starts),
        lateness=[x for f in figures for x in f.lateness],
        dropped=sum(f.dropped for f in figures),
        worker_cpu=sum(f.cpu for f in figures),
        postgres_cpu=None if pg0 is None or pg1 is None else pg1 - pg0,
        sandbox_cpu=box,
        too_many=statuses.get(429, 0),
        spread=spread_of(starts, begin, window),
    )


def show(step: Step) -> None:
    pg = (
        f"{step.postgres_cpu / step.window:.0%} of a core, "
        f"{1e3 * step.postgres_cpu / max(1, step.polls):.2f} ms/poll"
        if step.postgres_cpu is not None
        else "not measured"
    )
    print(
        f"-- {step.flows} flows at every {EVERY:g}s, {step.workers} worker(s): "
        f"{'BEHIND' if step.behind else 'on schedule'}"
    )
    print(
        f"  polls/s: {step.rate:.1f} sustained of {step.scheduled_rate:.1f} scheduled "
        f"({step.polls} polls in {step.window:g} s); runs dropped: {step.dropped}"
    )
    print(f"  lateness: p50 {1e3 * step.p50:.0f} ms, p99 {1e3 * step.p99:.0f} ms")
    print(
        f"  CPU: workers {step.worker_cpu / step.window:.0%} of a core "
        f"({1e3 * step.worker_cpu / max(1, step.polls):.2f} ms/poll), Postgres {pg}, "
        f"sandbox {step.sandbox_cpu / step.window:.0%}"
    )
    print(f"  429 answers: {step.too_many}; polls per second, max/mean: {step.spread:.2f}")
    print(f"  equivalent at every 5m: {step.at_five_minutes:,} flows")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flows", default="1000,2000,4000", help="the steps of N, rising")
    parser.add_argument("--workers", default="1,2", help="worker processes per run")
    parser.add_argument("--warmup", type=float, default=25.0, help="seconds before measuring")
    parser.add_argument("--window", type=float, default=40.0, help="seconds measured")
    args = parser.parse_args()
    ladder = [int(n) for n in args.flows.split(",")]
    # Whole intervals only: a flow runs once per interval, whatever its phase.
    args.window = max(EVERY, EVERY * round(args.window / EVERY))

    tmp = Path(tempfile.mkdtemp(prefix="bench-capacity-pg-"))
    embedded = None
    dsn = os.environ.get("DATABASE_URL")
    pg_data: Path | None = None
    if not dsn:
        from connector.db.embedded import EmbeddedPostgres

        os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach its data folder
        embedded = EmbeddedPostgres(tmp / "pg")
        dsn = embedded.start()
        pg_data = embedded.data_dir
    print(
        f"compressed time: every {EVERY:g}s for every 5m ({PRODUCTION_EVERY / EVERY:g}x); "
        f"{PER_CONNECTION} flows per connection, lists of {SUBSCRIBERS}, "
        f"~{CHANGED:.0%} changed per interval; sandbox {LATENCY * 1000:.0f} ms latency, "
        f"{RATE:g} requests/s per connection"
    )
    best: dict[int, Step] = {}
    steps: list[Step] = []
    try:
        for workers in [int(w) for w in args.workers.split(",")]:
            for flows in ladder:
                step = run_step(flows, workers, args.warmup, args.window, dsn, pg_data)
                show(step)
                steps.append(step)
                sys.stdout.flush()
                if step.behind:
                    break
                best[workers] = step
    finally:
        if embedded is not None:
            embedded.stop(mode="immediate")
        shutil.rmtree(tmp, ignore_errors=True)
    print("capacity (the largest step on schedule):")
    for workers, step in best.items():
        print(
            f"  {workers} worker(s): {step.rate:.1f} polls/s, p99 lateness "
            f"{1e3 * step.p99:.0f} ms: {step.at_five_minutes:,} flows at every 5m"
        )
    if not best:
        print("  none: the first step already fell behind")
    for workers in sorted({s.workers for s in steps}):
        top = max((s for s in steps if s.workers == workers), key=lambda s: s.rate)
        print(
            f"  {workers} worker(s), highest rate sustained in any step: {top.rate:.1f} polls/s "
            f"({top.at_five_minutes:,} flows at every 5m, p99 lateness {1e3 * top.p99:.0f} ms)"
        )
    one = best.get(1)
    figure = max((s.at_five_minutes for s in best.values()), default=0)
    print("targets:")
    print(
        f"  >= {TARGET_FLOWS:,} flows at every 5m, p99 lateness < {TARGET_P99:g} s, no 429: "
        f"{'met' if figure >= TARGET_FLOWS else 'MISSED'} ({figure:,}"
        f"{'' if one is None else f'; one worker {one.at_five_minutes:,}'}; the largest step "
        "run bounds this figure from below)"
    )
    spreads = [s.spread for s in best.values()]
    worst = max(spreads, default=float("nan"))
    print(
        f"  polls per second max/mean <= {TARGET_SPREAD:g}: "
        f"{'met' if worst <= TARGET_SPREAD else 'MISSED'} ({worst:.2f})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
