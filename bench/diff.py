"""Snapshot-diff benchmark: mailing lists of 100,000 and 1,000,000 subscribers, 1% churn.

The sandbox runs in this process; each poll runs in a child worker process, so that the
worker's peak RSS is its own (the sandbox's million subscribers are not counted). For each
size: a baseline poll, 1% churn (a third removed, a third unsubscribed, a third new), and a
second poll, whose wall time, fetch time, diff time (the transaction: full join, apply,
events) and peak RSS are printed. Then the diff alone: a million keys COPYed straight into
Postgres and diffed, no HTTP. Last, the requests each trigger makes on an unchanged account.

    python bench/diff.py [--sizes 100000,1000000] [--dsn postgresql://...]

Targets: the diff of 1,000,000 keys under 10 s; the worker's peak RSS under 250 MB, and flat
from 100k to 1M.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from aiolimiter import AsyncLimiter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.auth.tokens import StaticKey
from connector.config import ActionSpec, Flow, TriggerSpec
from connector.db import migrate
from connector.db.embedded import EmbeddedPostgres
from connector.db.pool import ensure_database, json_codecs
from connector.diff import SnapshotLoader, snapshot_baseline, snapshot_diff
from connector.engine import poll_flow
from connector.providers.sendpulse_client import SendPulseClient
from connector.sandbox.harness import start_sandbox
from connector.sandbox.seed import seed_big, seed_demo
from triggers import TRIGGERS


def peak_rss_mb() -> float:
    """This process's peak resident set, in MB.

    VmHWM belongs to the process's own address space. ru_maxrss would not do: Linux carries
    it across fork and exec, so the child would report the sandbox parent's million rows.
    """
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@asynccontextmanager
async def database(dsn: str | None) -> AsyncIterator[str]:
    if dsn:
        yield dsn
        return
    root = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    os.chmod(root, 0o755)  # noqa: S103 - the postgres user must reach its data folder
    embedded = EmbeddedPostgres(root / "pg")
    try:
        url = embedded.start()
        await ensure_database(url)
        yield url
    finally:
        embedded.stop(mode="immediate")
        shutil.rmtree(root, ignore_errors=True)


async def fresh_db(dsn: str, name: str) -> str:
    admin = await asyncpg.connect(dsn)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))
    conn = await asyncpg.connect(url)
    try:
        await migrate.migrate(conn)
    finally:
        await conn.close()
    return url


def make_flow(key: str, params: dict[str, Any]) -> Flow:
    return Flow(
        name="bench-" + key.split(".")[1],
        trigger=TriggerSpec(type=key, connection="main", params=params),
        actions=[ActionSpec(type="log")],
    )


# -- the worker (a child process) ----------------------------------------------------------


async def worker(args: argparse.Namespace) -> None:
    """One poll of sendpulse.subscriber_added; prints its figures as one JSON line."""
    trigger = TRIGGERS.get("sendpulse.subscriber_added")
    assert trigger is not None
    flow = make_flow("sendpulse.subscriber_added", {"mailing_list_id": args.list_id})
    params = trigger.Params.model_validate({"mailing_list_id": args.list_id})
    pool = await asyncpg.create_pool(args.dsn, min_size=1, max_size=2, init=json_codecs)
    try:
        async with aiohttp.ClientSession() as http:
            client = SendPulseClient(
                connection_id="main",
                session=http,
                base_url=args.base_url,
                limiter=AsyncLimiter(1_000_000, 1),
                auth=StaticKey(connection_id="main", provider="sendpulse", key=args.key, pool=pool),
            )
            started = time.monotonic()
            result = await poll_flow(
                flow, params, trigger=trigger, client=client, pool=pool, worker="bench"
            )
            wall = time.monotonic() - started
    finally:
        await pool.close()
    figures = {
        "status": result.status,
        "error": result.error,
        "items": result.items_seen,
        "events": result.events_created,
        "requests": result.requests,
        "wall_s": round(wall, 2),
        "fetch_s": round(result.fetch_ms / 1000, 2),
        "diff_s": round(result.diff_ms / 1000, 2),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
    print(json.dumps(figures), flush=True)


async def run_worker(base_url: str, key: str, dsn: str, list_id: int) -> dict[str, Any]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--worker",
        "--base-url",
        base_url,
        "--key",
        key,
        "--dsn",
        dsn,
        "--list-id",
        str(list_id),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate()
    if proc.returncode != 0:
        raise SystemExit(f"worker failed with exit code {proc.returncode}")
    figures: dict[str, Any] = json.loads(out.decode().strip().splitlines()[-1])
    return figures


def churn(state: Any, book_id: int, size: int, rate: float) -> int:
    rng = random.Random(size)
    picks = rng.sample(range(1, size + 1), int(size * rate))
    third = len(picks) // 3
    for n in picks[:third]:
        state.remove_subscriber(book_id, f"user{n:07d}@example.com")
    for n in picks[third : 2 * third]:
        state.unsubscribe(book_id, f"user{n:07d}@example.com")
    for n in picks[2 * third :]:
        state.add_subscriber(book_id, f"new{n:07d}@example.com", webhook=False)
    return len(picks) - third  # removed + added: what subscriber_added/removed would see


async def bench_poll(dsn: str, size: int) -> dict[str, Any]:
    url = await fresh_db(dsn, f"bench_poll_{size}")
    async with start_sandbox(rate_limit=None) as sb:
        seed_big(sb.state, size)
        book_id = next(iter(sb.state.books))
        key = sb.state.auth.add_api_key(sb.client_id)
        baseline = await run_worker(sb.base_url, key, url, book_id)
        churn(sb.state, book_id, size, 0.01)
        second = await run_worker(sb.base_url, key, url, book_id)
    return {"size": size, "baseline": baseline, "after_churn": second}


async def bench_diff_alone(dsn: str, size: int) -> dict[str, Any]:
    """COPY ``size`` keys and diff them against a stored snapshot, without any HTTP."""
    url = await fresh_db(dsn, f"bench_diff_{size}")
    conn = await asyncpg.connect(url)
    try:

        async def load(keys: Any) -> float:
            started = time.monotonic()
            loader = SnapshotLoader(conn)
            await loader.open()
            for key in keys:
                await loader.add(key, "1", None)
            await loader.close()
            return time.monotonic() - started

        await load(f"user{n:07d}@example.com" for n in range(size))
        async with conn.transaction():
            await snapshot_baseline(conn, "bench")
        gone = size // 200
        copy_s = await load(
            [f"user{n:07d}@example.com" for n in range(gone, size)]
            + [f"new{n:07d}@example.com" for n in range(gone)]
        )
        started = time.monotonic()
        async with conn.transaction():
            changed = await snapshot_diff(conn, "bench")
        diff_s = time.monotonic() - started
    finally:
        await conn.close()
    return {
        "size": size,
        "copy_s": round(copy_s, 2),
        "diff_s": round(diff_s, 2),
        "copy_and_diff_s": round(copy_s + diff_s, 2),
        "delta_rows": changed,
    }


QUIET_PARAMS: dict[str, dict[str, Any]] = {
    "sendpulse.subscriber_added": {"mailing_list_id": 1},
    "sendpulse.subscriber_removed": {"mailing_list_id": 1},
    "sendpulse.subscriber_unsubscribed": {"mailing_list_id": 1},
    "sendpulse.subscriber_status_changed": {"mailing_list_id": 1},
    "sendpulse.subscriber_variables_changed": {"mailing_list_id": 1},
}


async def bench_quiet_requests(dsn: str) -> list[dict[str, Any]]:
    """Requests per poll on an unchanged account (the demo seed), for every trigger."""
    url = await fresh_db(dsn, "bench_quiet")
    rows = []
    pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=json_codecs)
    try:
        async with start_sandbox(rate_limit=None) as sb, aiohttp.ClientSession() as http:
            seed_demo(sb.state)
            site = next(iter(sb.state.channels.websites), None)
            QUIET_PARAMS["sendpulse.push_subscriber_added"] = {
                "website_id": site or sb.state.add_push_website("https://example.com").id
            }
            key = sb.state.auth.add_api_key(sb.client_id)
            client = SendPulseClient(
                connection_id="main",
                session=http,
                base_url=sb.base_url,
                limiter=AsyncLimiter(1000, 1),
                auth=StaticKey(connection_id="main", provider="sendpulse", key=key, pool=pool),
            )
            for trigger in TRIGGERS:
                raw = QUIET_PARAMS.get(trigger.key, {})
                flow = make_flow(trigger.key, raw)
                params = trigger.Params.model_validate(raw)
                clock = sb.clock.datetime
                await poll_flow(
                    flow, params, trigger=trigger, client=client, pool=pool, worker="b", clock=clock
                )
                quiet = await poll_flow(
                    flow, params, trigger=trigger, client=client, pool=pool, worker="b", clock=clock
                )
                rows.append(
                    {
                        "trigger": trigger.key,
                        "requests": quiet.requests,
                        "items": quiet.items_seen,
                        "status": quiet.status,
                        "calls": "; ".join(trigger.api_calls),
                    }
                )
    finally:
        await pool.close()
    return rows


async def main(args: argparse.Namespace) -> None:
    sizes = [int(s.replace("_", "")) for s in args.sizes.split(",")]
    async with database(args.dsn) as dsn:
        print("== poll of sendpulse.subscriber_added, 1% churn (worker in its own process)")
        for size in sizes:
            figures = await bench_poll(dsn, size)
            for phase in ("baseline", "after_churn"):
                f = figures[phase]
                print(
                    f"{size:>9,} {phase:<11} wall {f['wall_s']:>6.2f}s  fetch {f['fetch_s']:>6.2f}s"
                    f"  diff {f['diff_s']:>5.2f}s  requests {f['requests']:>6}"
                    f"  events {f['events']:>5}  peak RSS {f['peak_rss_mb']:>6.1f} MB"
                )
        print("== diff alone (COPY of every key, then the SQL diff; no HTTP)")
        for size in sizes:
            d = await bench_diff_alone(dsn, size)
            print(
                f"{size:>9,} copy {d['copy_s']:>5.2f}s  diff {d['diff_s']:>5.2f}s"
                f"  together {d['copy_and_diff_s']:>5.2f}s  delta rows {d['delta_rows']}"
            )
        print("== requests per poll on an unchanged account (demo seed)")
        for row in await bench_quiet_requests(dsn):
            print(f"{row['trigger']:<42} {row['requests']:>3}  {row['status']:<6} {row['calls']}")


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100000,1000000")
    parser.add_argument("--dsn", default=os.environ.get("DATABASE_URL"))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--base-url", help=argparse.SUPPRESS)
    parser.add_argument("--key", help=argparse.SUPPRESS)
    parser.add_argument("--list-id", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        asyncio.run(worker(args))
    else:
        configure_quiet()
        asyncio.run(main(args))


def configure_quiet() -> None:
    # The per-poll log lines would drown the figures.
    import logging

    import structlog

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.WARNING))


if __name__ == "__main__":
    cli()
