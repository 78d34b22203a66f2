"""The CLI commands of the delivery log: ``deliveries``, ``events show``, ``replay``,
``verify-webhook`` and ``secret webhook``. ``connector.cli`` parses; these do the work."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg

from connector.errors import ConfigError

EXIT_OK = 0
EXIT_FAILURE = 1


def parse_since(text: str | None, now: datetime) -> datetime | None:
    """``1h``/``30m``/``2d`` ago, or an ISO timestamp with a zone."""
    if text is None:
        return None
    from connector.units import parse_duration

    try:
        return now - parse_duration(text)
    except ValueError:
        pass
    except OverflowError:
        raise ConfigError(f"--since {text!r} reaches back before the year 1") from None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--since {text!r}: write a duration (30m, 1h, 2d) or a timestamp"
        ) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def _console() -> Any:
    from rich.console import Console

    # Off a terminal rich assumes 80 columns and cuts ids short (an ellipsis no command
    # takes back): piped output gets all the width it needs.
    return Console(width=None if sys.stdout.isatty() else 100_000)


def _when(value: str | None) -> str:
    return value.replace("T", " ")[:19] if value else "-"


def cmd_deliveries(args: argparse.Namespace) -> int:
    from connector.db.command_db import with_command_db
    from connector.delivery_log import list_deliveries

    now = datetime.now(UTC)
    since = parse_since(args.since, now)

    async def work(conn: asyncpg.Connection) -> list[dict[str, Any]]:
        return await list_deliveries(
            conn,
            flow=args.flow,
            state=args.status,
            since=since,
            event_id=args.event,
            limit=args.limit,
        )

    rows = asyncio.run(with_command_db(work))
    if args.json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False))
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=f"Deliveries ({len(rows)} shown, newest first)")
    for column in ("delivery", "event", "flow", "item", "action", "state", "tries", "when"):
        table.add_column(column)
    table.add_column("result", overflow="fold")
    for row in rows:
        state = row["state"]
        when = {
            "delivered": row["delivered_at"],
            "pending": row["next_attempt_at"],
        }.get(state, row["updated_at"])
        style = {"delivered": "green", "dead": "red", "running": "cyan"}.get(state, "yellow")
        # Item keys, summaries and errors carry subscriber text: escaped, never markup.
        table.add_row(
            escape(row["id"]),
            escape(row["event_id"][:16]),
            escape(row["flow_name"]),
            escape(row["item_key"]),
            escape(f"{row['action_index']}:{row['action_type']}"),
            f"[{style}]{escape(state)}[/{style}]",
            str(row["attempt"]),
            _when(when),
            escape(row["summary"] if state == "delivered" else (row["last_error"] or "")),
        )
    _console().print(table)
    return EXIT_OK


def cmd_events_show(args: argparse.Namespace) -> int:
    from connector.db.command_db import with_command_db
    from connector.delivery_log import show_event

    async def work(conn: asyncpg.Connection) -> dict[str, Any] | None:
        return await show_event(conn, args.event_id)

    shown = asyncio.run(with_command_db(work))
    if shown is None:
        print(f"error: no event {args.event_id}", file=sys.stderr)
        return EXIT_FAILURE
    if args.json:
        print(json.dumps(shown, ensure_ascii=False, indent=2))
        return EXIT_OK
    from rich.markup import escape
    from rich.table import Table

    console = _console()
    console.print(
        f"[bold]event {escape(shown['id'])}[/bold]  flow {escape(shown['flow_name'])}  "
        f"trigger {escape(shown['trigger_type'])}  item {escape(shown['item_key'])}  "
        f"source {escape(shown['source'])}  recorded {_when(shown['created_at'])}"
    )
    console.print_json(json.dumps(shown["payload"], ensure_ascii=False))
    for delivery in shown["deliveries"]:
        table = Table(
            title=escape(
                f"delivery {delivery['id']}  action {delivery['action_index']}:"
                f"{delivery['action_type']}  {delivery['state']}"
            )
        )
        for column in ("attempt", "started", "ms", "outcome", "status"):
            table.add_column(column)
        table.add_column("detail", overflow="fold")
        for attempt in delivery["attempts"]:
            table.add_row(
                str(attempt["attempt"]),
                _when(attempt["started_at"]),
                str(attempt["duration_ms"]),
                escape(attempt["outcome"]),
                str(attempt["status_code"] or "-"),
                escape(attempt["detail"] or ""),
            )
        console.print(table)
    return EXIT_OK


def cmd_replay(args: argparse.Namespace) -> int:
    from connector.db.command_db import with_command_db
    from connector.delivery_log import Replayed, replay_dead, replay_delivery

    now = datetime.now(UTC)
    since = parse_since(args.since, now)

    async def work(conn: asyncpg.Connection) -> list[Replayed]:
        if args.delivery:
            return [await replay_delivery(conn, args.delivery, now)]
        return await replay_dead(conn, args.flow, now, since)

    replayed = asyncio.run(with_command_db(work))
    for item in replayed:
        print(f"replayed {item.id} (flow {item.flow_name}, event {item.event_id})")
    if not replayed:
        print("nothing to replay: no dead deliveries match")
        return EXIT_OK
    if args.wait:
        return _wait_for_replayed([item.id for item in replayed], args.wait_timeout)
    return EXIT_OK


def _wait_for_replayed(ids: list[str], timeout: float | None) -> int:
    from connector.db.command_db import with_command_db
    from connector.progress_bar import bar
    from connector.replay_watch import ReplayProgress, watch

    async def work(conn: asyncpg.Connection) -> ReplayProgress:
        with bar("replaying", total=len(ids), unit="deliveries") as shown:
            return await watch(conn, ids, shown, give_up_after=timeout)

    final = asyncio.run(with_command_db(work))
    print(
        f"{final.delivered} delivered, {final.dead} dead again, {final.waiting} still waiting"
        + (" (is a worker running?)" if final.waiting else "")
    )
    return EXIT_OK if final.waiting == 0 and final.dead == 0 else EXIT_FAILURE


def cmd_verify_webhook(args: argparse.Namespace) -> int:
    from connector.errors import SignatureInvalid
    from connector.webhook_signing import verify

    secrets = list(args.secret or [])
    if not secrets and os.environ.get("WEBHOOK_SECRET"):
        secrets = os.environ["WEBHOOK_SECRET"].split()
    if not secrets:
        raise ConfigError("give --secret (or set WEBHOOK_SECRET)")
    headers: dict[str, str] = {}
    for header in args.header or []:
        name, sep, value = header.partition(":")
        if not sep:
            raise ConfigError(f"--header {header!r}: write it as 'name: value'")
        headers[name.strip()] = value.strip()
    try:
        body = Path(args.body).read_bytes() if args.body != "-" else sys.stdin.buffer.read()
    except OSError as exc:
        raise ConfigError(f"--body {args.body}: cannot read it ({exc.strerror})") from None
    now = datetime.fromtimestamp(int(args.now), UTC) if args.now is not None else datetime.now(UTC)
    try:
        msg_id = verify(secrets, headers, body, now=now, tolerance=args.tolerance)
    except SignatureInvalid as exc:
        print(f"invalid: {exc}")
        if str(exc) in ("webhook-timestamp is too old", "webhook-timestamp is in the future"):
            print(
                f"(the accepted window is {args.tolerance}s either way; to check a request "
                "captured earlier, widen it with --tolerance SECONDS)"
            )
        return EXIT_FAILURE
    print(f"valid: webhook-id {msg_id}")
    return EXIT_OK


def cmd_secret(args: argparse.Namespace) -> int:
    if args.secret_kind == "rotate":  # noqa: S105 - a subcommand name, not a secret
        from connector.auth.rotation import cmd_rotate

        return cmd_rotate()
    from connector.webhook_signing import generate_secret

    print(generate_secret())
    return EXIT_OK


def add_parsers(commands: Any) -> None:
    """The subcommands' arguments (called from ``connector.cli._parser``)."""
    from connector.delivery_log import STATES

    deliveries = commands.add_parser("deliveries", help="list deliveries, newest first")
    deliveries.add_argument("--flow", help="only this flow")
    deliveries.add_argument("--status", choices=STATES, help="only deliveries in this state")
    deliveries.add_argument("--since", help="created within (30m, 1h, 2d) or since a timestamp")
    deliveries.add_argument("--event", help="only this event's deliveries")
    deliveries.add_argument("--limit", type=int, default=100, help="at most this many (100)")
    deliveries.add_argument("--json", action="store_true", help="JSON lines instead of a table")

    events = commands.add_parser("events", help="look at stored events")
    events_commands = events.add_subparsers(dest="events_command", metavar="ACTION", required=True)
    show = events_commands.add_parser("show", help="an event's payload and every attempt")
    show.add_argument("event_id", metavar="ID")
    show.add_argument("--json", action="store_true", help="one JSON document")

    replay = commands.add_parser(
        "replay", help="send dead deliveries again, under the same delivery id"
    )
    which = replay.add_mutually_exclusive_group(required=True)
    which.add_argument("--delivery", metavar="ID", help="one delivery")
    which.add_argument("--flow", help="every dead delivery of this flow")
    replay.add_argument(
        "--status", choices=["dead"], default="dead", help="only dead ones can be replayed"
    )
    replay.add_argument("--since", help="with --flow: died within (1h) or since a timestamp")
    replay.add_argument(
        "--wait",
        action="store_true",
        help="follow the replayed deliveries (a progress bar on a terminal) until none waits",
    )
    replay.add_argument(
        "--wait-timeout", type=float, help="with --wait: give up after this many seconds"
    )

    verify = commands.add_parser(
        "verify-webhook", help="check a received webhook's Standard Webhooks signature"
    )
    verify.add_argument(
        "--secret",
        action="append",
        help="whsec_ secret (repeat during rotation; env WEBHOOK_SECRET)",
    )
    verify.add_argument(
        "--header", "-H", action="append", help="'webhook-id: ...' (repeat for each header)"
    )
    verify.add_argument("--body", default="-", help="file with the raw body ('-' = stdin)")
    verify.add_argument("--tolerance", type=int, default=300, help="seconds either way (300)")
    verify.add_argument("--now", type=int, help=argparse.SUPPRESS)

    secret = commands.add_parser("secret", help="make secrets")
    secret_commands = secret.add_subparsers(dest="secret_kind", metavar="KIND", required=True)
    secret_commands.add_parser("webhook", help="print a fresh whsec_ webhook secret")
    secret_commands.add_parser(
        "rotate", help="re-encrypt every stored secret under the first CONNECTOR_SECRET_KEY"
    )
