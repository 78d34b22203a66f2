"""Poll-cycle benchmark: 500 connections, 2 flows each, through the daemon's own poll path.

A sandbox child process serves 500 API clients, each with its own mailing list, with 20 ms
added latency and its own limit of 3 requests/s (any excess would answer 429). This process
is the worker: ``Worker._poll`` for every flow at once, i.e. ``ProviderClients`` (one limiter
and one token per connection) and ``poll_flow`` against a real Postgres. Four cycles: a
warm-up that takes the tokens and the baselines; one after a few changes (a new subscriber
on every tenth list, a new campaign); a quiet one (nothing changed); and one with a new
subscriber on every list, polling only the subscriber flows.

Prints, per cycle: wall time, the floor the rate limits impose (the busiest connection's
requests ÷ its rate, plus the latency) and the ratio, answers 429, API requests, worker and
Postgres CPU per poll; the worker's peak RSS; and each target, met or MISSED. Uses
``DATABASE_URL`` if set, else a throwaway embedded Postgres (whose CPU it reads in /proc).

    python bench/poll.py [--connections 500] [--subscribers 50]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import resource
import shutil
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
SECRET = "bench-secret"  # noqa: S105 - the sandbox's throwaway client secret
HOOK_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"  # noqa: S105 - a public test vector


def client_id(n: int) -> str:
    return f"bench-{n:04d}"


# -- the sandbox (child process) ------------------------------------------------------------


def sandbox_main(pipe: Any, connections: int, subscribers: int) -> None:
    from connector.sandbox.harness import start_sandbox

    async def main() -> None:
        async with start_sandbox(rate_limit=RATE, latency=LATENCY) as sb:
            for n in range(connections):
                sb.add_client(client_id(n), SECRET)
                book = sb.state.add_book(f"List {n}")
                for i in range(subscribers):
                    sb.state.add_subscriber(book.id, f"s{i}.l{n}@example.com", webhook=False)
            sb.state.create_campaign([1], subject="Before")
            pipe.send((sb.base_url, {n: n + 1 for n in range(connections)}))
            while True:
                command, since = await asyncio.to_thread(pipe.recv)
                if command == "count":
                    pipe.send(len(sb.requests()))
                elif command == "log":
                    pipe.send([(r.client_id, r.status) for r in sb.requests()[since:]])
                elif command == "cpu":
                    pipe.send(time.process_time())
                elif command == "change":
                    # A new subscriber on every tenth list and one new campaign, which every
                    # connection sees (they share the sandbox's one account).
                    for n in range(0, connections, 10):
                        sb.state.add_subscriber(n + 1, f"new.l{n}@example.com", webhook=False)
                    sb.state.create_campaign([1], subject="Between")
                    pipe.send(None)
                elif command == "one-new":
                    # One new subscriber on every list.
                    for n in range(connections):
                        sb.state.add_subscriber(n + 1, f"one.l{n}@example.com", webhook=False)
                    pipe.send(None)
                else:
                    return

    asyncio.run(main())


# -- the worker (this process) --------------------------------------------------------------


def flows_yaml(base_url: str, books: dict[int, int]) -> str:
    lines = ["egress:", "  allow_networks: [127.0.0.1/32]", "connections:"]
    for n in books:
        lines += [
            f"  {client_id(n)}:",
            f"    client_id: {client_id(n)}",
            f"    client_secret: {SECRET}",
            f"    base_url: {base_url}",
            f"    rate_limit: {RATE:g}/s",
        ]
    lines.append("flows:")
    action = (
        f"    actions: [{{type: webhook, url: 'http://127.0.0.1:9/hook', secret: {HOOK_SECRET}}}]"
    )
    for n, book in books.items():
        lines += [
            f"  - name: subscribers-{n:04d}",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            f"      connection: {client_id(n)}",
            f"      params: {{mailing_list_id: {book}}}",
            action,
            f"  - name: campaigns-{n:04d}",
            f"    trigger: {{type: sendpulse.campaign_created, connection: {client_id(n)}}}",
            action,
        ]
    return "\n".join(lines) + "\n"


@dataclass
class Cycle:
    name: str
    polls: int
    wall: float
    cpu: float
    system: float
    requests: int
    too_many: int
    other_errors: int
    busiest: int
    polls_ok: int
    polls_failed: int
    events: int
    errors: dict[str, int]
    sandbox_cpu: float
    postgres_cpu: float | None
    machine: float

    @property
    def floor(self) -> float:
        return self.busiest / RATE + LATENCY

    @property
    def ratio(self) -> float:
        return self.wall / self.floor

    @property
    def cpu_per_poll(self) -> float:
        return self.cpu / max(1, self.polls)

    @property
    def postgres_per_poll(self) -> float | None:
        return None if self.postgres_cpu is None else self.postgres_cpu / max(1, self.polls)


WARM_UP = "warm-up: tokens and baselines"
CHANGED = "changed: a new subscriber on every tenth list, one new campaign"
QUIET = "quiet: nothing changed"
ONE_NEW = "one new subscriber on every list (subscriber flows only)"
# (cycle, the sandbox's change before it, which flows it polls)
CYCLES = [
    (WARM_UP, None, "all"),
    (CHANGED, "change", "all"),
    (QUIET, None, "all"),
    (ONE_NEW, "one-new", "subscribers"),
]
PROFILED = {"warm-up": WARM_UP, "changed": CHANGED, "quiet": QUIET, "one-new": ONE_NEW}


async def run_cycles(
    pipe: Any,
    base_url: str,
    books: dict[int, int],
    env: dict[str, str],
    profile: str | None,
    profile_cycle: str = "quiet",
    statements: bool = False,
) -> list[Cycle]:
    import cProfile

    from bench import _pgstat
    from connector.catalog import CATALOG
    from connector.config import parse
    from connector.daemon import Worker, runtime

    config = parse(flows_yaml(base_url, books), CATALOG, "bench.yaml", env={})
    every = [flow.name for flow in config.flows]
    subscriber_flows = [name for name in every if name.startswith("subscribers-")]
    pg_data = Path(env["CONNECTOR_HOME"]) / "postgres" / "data"
    cycles: list[Cycle] = []
    async with runtime(env) as rt:
        worker = Worker(rt, config, port=None)
        await worker.providers.ensure_connections()
        await worker.ownership.tick()
        if len(worker.ownership.owned) != len(books):
            raise RuntimeError(f"owns {len(worker.ownership.owned)} of {len(books)} connections")
        # The worker's own writer of quiet polls' poll_runs rows, as in the daemon.
        stop_book = asyncio.Event()
        book = asyncio.create_task(worker.poll_runs.run(stop_book))
        seen = await asyncio.to_thread(ask, pipe, ("count", 0))
        if statements and not await _pgstat.enable(rt.pool):
            print("pg_stat_statements: not available on this server (see bench/README.md)")
            statements = False
        for name, change, which in CYCLES:
            names = every if which == "all" else subscriber_flows
            if change is not None:
                await asyncio.to_thread(ask, pipe, (change, 0))
            started = await rt.pool.fetchval("SELECT now()")
            counted = statements and name == PROFILED[profile_cycle]
            if counted:
                await _pgstat.reset(rt.pool)
            box0 = await asyncio.to_thread(ask, pipe, ("cpu", 0))
            pg0 = postgres_cpu(pg_data)
            busy0, total0 = machine_busy()
            # CPU time, not wall time: on a shared machine the process is often descheduled,
            # and a wall-clock profile charges that to whatever call it was in (socket sends).
            profiler = (
                cProfile.Profile(time.process_time)
                if profile and name == PROFILED[profile_cycle]
                else None
            )
            if profiler is not None:
                profiler.enable()
            cpu0, wall0 = time.process_time(), time.monotonic()
            times0 = os.times()
            # What the scheduler does when every flow falls due at once.
            polls = asyncio.gather(*(worker._poll(flow) for flow in names))
            try:
                await asyncio.wait_for(polls, CYCLE_TIMEOUT)
            except TimeoutError:
                done = await rt.pool.fetchval(q_runs_count, started)
                raise Stalled(
                    f"{name}: {done} of {len(names)} polls done after {CYCLE_TIMEOUT:g} s"
                ) from None
            wall = time.monotonic() - wall0
            # The quiet polls' rows, which the book would write within the next second.
            await worker.poll_runs.flush()
            cpu = time.process_time() - cpu0
            times1 = os.times()
            if profiler is not None:
                profiler.disable()
                profiler.dump_stats(str(profile))
            busy1, total1 = machine_busy()
            if counted:
                print(f"-- statements of the {profile_cycle} cycle, per poll:")
                for line in await _pgstat.top(rt.pool, len(names)):
                    print("  " + line)
            pg1 = postgres_cpu(pg_data)
            box = await asyncio.to_thread(ask, pipe, ("cpu", 0)) - box0
            records = await asyncio.to_thread(ask, pipe, ("log", seen))
            seen += len(records)
            per_client = Counter(client for client, _ in records)
            statuses = Counter(status for _, status in records)
            runs = await rt.pool.fetchrow(q_runs_summary, started)
            errors = await rt.pool.fetch(q_runs_errors, started)
            cycles.append(
                Cycle(
                    name=name,
                    polls=len(names),
                    wall=wall,
                    cpu=cpu,
                    system=times1.system - times0.system,
                    requests=len(records),
                    too_many=statuses[429],
                    other_errors=sum(
                        n for status, n in statuses.items() if status not in (200, 429)
                    ),
                    busiest=max(per_client.values(), default=0),
                    polls_ok=runs["ok"],
                    polls_failed=runs["failed"],
                    events=runs["events"],
                    errors={row["error"]: row["n"] for row in errors},
                    sandbox_cpu=box,
                    postgres_cpu=None if pg0 is None or pg1 is None else pg1 - pg0,
                    machine=(busy1 - busy0) / (total1 - total0),
                )
            )
        stop_book.set()
        await book
    return cycles


def machine_busy() -> tuple[float, float]:
    """(busy, total) CPU seconds of the whole machine since boot, from /proc/stat."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]
    hz = os.sysconf("SC_CLK_TCK")
    return (sum(fields) - idle) / hz, sum(fields) / hz


def ask(pipe: Any, message: tuple[str, int]) -> Any:
    pipe.send(message)
    return pipe.recv()


q_runs_count = "SELECT count(*) FROM poll_runs WHERE started_at >= $1"
q_runs_errors = """
SELECT error, count(*) AS n FROM poll_runs
WHERE started_at >= $1 AND error IS NOT NULL GROUP BY error ORDER BY n DESC LIMIT 5
"""
q_runs_summary = """
SELECT count(*) FILTER (WHERE error IS NULL) AS ok,
       count(*) FILTER (WHERE error IS NOT NULL) AS failed,
       coalesce(sum(events_created), 0) AS events
FROM poll_runs WHERE started_at >= $1
"""
CYCLE_TIMEOUT = 120.0


class Stalled(RuntimeError):
    """A cycle did not finish in time."""


async def drop_database(server: str, name: str) -> None:
    import asyncpg

    conn = await asyncpg.connect(urlunsplit(urlsplit(server)._replace(path="/postgres")))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    return "met" if value <= target else "MISSED"


def report(cycles: list[Cycle], connections: int, subscribers: int) -> None:
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"connections: {connections}  flows: {2 * connections} "
        f"(subscriber_added on a list of {subscribers} + campaign_created each)"
    )
    print(f"sandbox: {LATENCY * 1000:.0f} ms latency, {RATE:g} requests/s per client")
    for c in cycles:
        print(f"-- {c.name}")
        print(
            f"  polls: {c.polls_ok} ok, {c.polls_failed} failed (of {c.polls}); "
            f"events created: {c.events}"
        )
        for error, n in c.errors.items():
            print(f"    {n}x {error}")
        print(f"  wall time: {c.wall:.2f} s")
        print(
            f"  floor: {c.floor:.2f} s (busiest connection {c.busiest} requests "
            f"÷ {RATE:g}/s + {LATENCY * 1000:.0f} ms)"
        )
        print(f"  ratio wall/floor: {c.ratio:.2f}")
        print(
            f"  API requests: {c.requests}  429 answers: {c.too_many}  other errors: "
            f"{c.other_errors}"
        )
        print(
            f"  worker CPU: {c.cpu:.2f} s ({100 * c.cpu / c.wall:.0f}% of one core), "
            f"{1e3 * c.cpu_per_poll:.2f} ms per poll ({1e3 * c.system / max(1, c.polls):.2f} ms "
            "of it in the kernel)"
        )
        pg = c.postgres_per_poll
        others = (
            f", Postgres {c.postgres_cpu:.2f} s ({1e3 * pg:.2f} ms per poll)"
            if c.postgres_cpu is not None and pg is not None
            else ""
        )
        print(
            f"  CPU elsewhere: sandbox {c.sandbox_cpu:.2f} s{others}; the machine was "
            f"{100 * c.machine:.0f}% busy (all cores)"
        )
    print(f"worker peak RSS: {rss_mb:.1f} MB")
    by_name = {c.name: c for c in cycles}
    quiet, one_new, changed = by_name[QUIET], by_name[ONE_NEW], by_name[CHANGED]
    ms = 1e3
    pg_quiet = None if quiet.postgres_per_poll is None else ms * quiet.postgres_per_poll
    pg_one = None if one_new.postgres_per_poll is None else ms * one_new.postgres_per_poll
    lines = [
        ("quiet poll, worker CPU <= 0.5 ms", ms * quiet.cpu_per_poll, 0.5, "ms"),
        ("quiet poll, Postgres CPU <= 0.5 ms", pg_quiet, 0.5, "ms"),
        ("one new subscriber, Postgres CPU <= 2 ms", pg_one, 2.0, "ms"),
        ("changed cycle all at once, wall/floor <= 2.0", changed.ratio, 2.0, ""),
        ("no 429 in any cycle", float(sum(c.too_many for c in cycles)), 0.0, " answers"),
    ]
    if subscribers >= 1000:
        lines.append(("peak RSS <= 150 MB, lists of 1,000 in flight", rss_mb, 150.0, " MB"))
    print("targets:")
    for label, value, target, unit in lines:
        shown = "-" if value is None else f"{value:.2f}{unit}"
        print(f"  {label}: {verdict(value, target)} ({shown})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--connections", type=int, default=500)
    parser.add_argument("--subscribers", type=int, default=50, help="per mailing list")
    parser.add_argument("--keep-log", metavar="FILE", help="copy the worker's log there")
    parser.add_argument("--profile", metavar="FILE", help="cProfile a cycle in CPU time")
    parser.add_argument(
        "--profile-cycle", choices=sorted(PROFILED), default="quiet", help="the cycle profiled"
    )
    parser.add_argument(
        "--statements",
        action="store_true",
        help="pg_stat_statements of the profiled cycle (a DATABASE_URL server preloading it)",
    )
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    from connector import logging as connector_logging

    tmp = Path(tempfile.mkdtemp(prefix="bench-poll-"))
    os.chmod(tmp, 0o755)  # noqa: S103 - the postgres user must reach its data folder
    log_path = tmp / "worker.log"
    env = {"CONNECTOR_HOME": str(tmp), "CONNECTOR_SECRET_KEY": Fernet.generate_key().decode()}
    server = os.environ.get("DATABASE_URL")
    scratch = f"bench_poll_{os.getpid()}"
    if server:
        # A database of its own on that server (created by the worker, dropped at the end).
        env["DATABASE_URL"] = urlunsplit(urlsplit(server)._replace(path=f"/{scratch}"))
    ctx = multiprocessing.get_context("spawn")
    pipe, child_end = ctx.Pipe()
    sandbox = ctx.Process(
        target=sandbox_main, args=(child_end, args.connections, args.subscribers), daemon=True
    )
    sandbox.start()
    try:
        if not pipe.poll(120):
            raise RuntimeError("the sandbox did not start")
        base_url, books = pipe.recv()
        with log_path.open("w") as log_stream:
            # The daemon's own logging (JSON, INFO) so that its cost is in the CPU figures.
            connector_logging.configure(level="INFO", fmt="json", stream=log_stream)
            cycles = asyncio.run(
                run_cycles(
                    pipe,
                    base_url,
                    books,
                    env,
                    args.profile,
                    args.profile_cycle,
                    args.statements,
                )
            )
        warnings = sum('"level": "warning"' in line for line in log_path.open())
        if args.keep_log:
            shutil.copy(log_path, args.keep_log)
    finally:
        sandbox.terminate()
        shutil.rmtree(tmp, ignore_errors=True)
        if server:
            asyncio.run(drop_database(server, scratch))
    print(f"warnings logged: {warnings}")
    report(cycles, args.connections, args.subscribers)
    # The figures are the result, targets met or not; only a cycle that never ends fails.
    return 0


if __name__ == "__main__":
    sys.exit(main())
