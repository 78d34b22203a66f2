"""``connector status``: the status page's picture in a terminal, or as JSON for scripts.

Exits 1 when any flow is failing or needs reauth, so that a cron job or a monitoring check
can run it as it is.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg

from connector.catalog import CATALOG
from connector.status import Status, gather

EXIT_OK = 0
EXIT_UNHEALTHY = 1
STATE_STYLE = {"ok": "green", "failing": "red", "needs_reauth": "magenta", "paused": "yellow"}


def add_parser(commands: Any, default_config: str) -> None:
    status = commands.add_parser(
        "status", help="flows, workers and dead deliveries at a glance (exit 1 if unhealthy)"
    )
    status.add_argument(
        "--config",
        "-c",
        default=os.environ.get("CONNECTOR_CONFIG", default_config),
        help=f"flow file (env CONNECTOR_CONFIG, default {default_config})",
    )
    status.add_argument("--json", action="store_true", help="one JSON document")


def cmd_status(args: argparse.Namespace) -> int:
    from connector.config import load_file
    from connector.db.command_db import with_command_db
    from connector.instances import expand

    config = expand(load_file(args.config, CATALOG), {})

    async def work(conn: asyncpg.Connection) -> Status:
        return await gather(conn, config.flows)

    status = asyncio.run(with_command_db(work))
    if args.json:
        print(json.dumps(status.as_json(), ensure_ascii=False, indent=2))
    else:
        print_status(status)
    return EXIT_OK if status.healthy else EXIT_UNHEALTHY


def ago(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "-"
    return f"{_span((now - when).total_seconds())} ago"


def _span(seconds: float) -> str:
    from connector.units import format_duration

    if seconds < 1:
        return "0s"
    return format_duration(timedelta(seconds=round(seconds)))


def print_status(status: Status) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    now = status.at
    console = Console(width=None if sys.stdout.isatty() else 200)
    flows = Table(title=f"Flows at {now.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    for column in ("flow", "state", "trigger", "connection", "last poll", "next poll", "lag"):
        flows.add_column(column)
    for column in ("events 24h", "deliveries 24h", "dead"):
        flows.add_column(column, justify="right")
    for row in status.flows:
        style = STATE_STYLE.get(row.state, "white")
        if row.last_poll_at is not None:
            last = (
                f"{ago(row.last_poll_at, now)}, {row.last_poll_ms or 0} ms, "
                f"{row.last_poll_requests} req, {row.last_poll_events} ev"
            )
        else:
            last = "-"
        if row.polling is not None:
            last += f" (polling: {row.polling.pages} pages, {row.polling.items} items)"
        upcoming = "-"
        if row.next_poll_at is not None:
            upcoming = f"in {_span((row.next_poll_at - now).total_seconds())}"
        elif row.last_poll_at is not None and row.state != "paused":
            # Outside the worker the schedule is not known: its interval gives an estimate.
            due = (row.last_poll_at - now).total_seconds() + row.every_s
            upcoming = f"~in {_span(due)}" if due >= 1 else "due"
        deliveries = ", ".join(f"{k} {v}" for k, v in sorted(row.deliveries_24h.items())) or "-"
        flows.add_row(
            escape(row.name),
            f"[{style}]{row.state}[/{style}]",
            escape(row.trigger),
            escape(row.connection or "-"),
            escape(last),
            upcoming,
            "-" if row.cursor_age_s is None else _span(row.cursor_age_s),
            str(row.events_24h),
            escape(deliveries),
            f"[red]{row.dead}[/red]" if row.dead else "0",
        )
    console.print(flows)
    for row in status.flows:
        if row.error:
            console.print(f"[red]{escape(row.name)}[/red]: {escape(row.error)}")
    workers = Table(title="Workers alive")
    workers.add_column("worker")
    workers.add_column("connections held")
    for worker in status.workers:
        workers.add_row(escape(worker.worker), escape(", ".join(worker.connections) or "-"))
    if not status.workers:
        workers.add_row("(none)", "-")
    console.print(workers)
    dead = sum(row.dead for row in status.flows)
    if dead:
        console.print(
            f"[red]{dead} dead deliveries[/red]: connector deliveries --status dead; "
            "connector replay --delivery ID"
        )
