"""The command line: the only place that parses argv.

Exit codes: 0 success, 1 a runtime failure, 2 bad configuration or usage.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Sequence
from typing import Any

import structlog

from connector import __version__
from connector import logging as connector_logging
from connector.errors import ConfigError, ConfigInvalid

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
DEFAULT_CONFIG = "config/flows.yaml"

log = structlog.get_logger(__name__)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="connector",
        description=(
            "A self-hosted sync worker for SendPulse: polls accounts for trigger events and "
            "delivers them to the actions your YAML flows name."
        ),
    )
    parser.add_argument("--version", action="version", version=f"connector {__version__}")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING or ERROR (env LOG_LEVEL)")
    parser.add_argument("--log-format", choices=["json", "console"], help="(env LOG_FORMAT)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = commands.add_parser("run", help="run the worker daemon on a flow file")
    run.add_argument(
        "--config",
        "-c",
        default=os.environ.get("CONNECTOR_CONFIG", DEFAULT_CONFIG),
        help=f"flow file (env CONNECTOR_CONFIG, default {DEFAULT_CONFIG})",
    )
    _web_arguments(run)
    run.add_argument(
        "--drain",
        type=float,
        default=30.0,
        help="seconds to let polls and deliveries in flight finish on SIGTERM (default 30)",
    )

    demo = commands.add_parser(
        "demo", help="the sandbox, a webhook receiver and a worker on the demo flows"
    )
    demo.add_argument("--config", "-c", default="config/demo.yaml", help="demo flow file")
    _web_arguments(demo)
    demo.add_argument("--sandbox-port", type=int, default=8525)
    demo.add_argument("--receiver-port", type=int, default=8526)
    demo.add_argument(
        "--rate", type=float, default=1.0, help="sandbox changes per second (default 1)"
    )

    check = commands.add_parser("check", help="validate a flow file and list what it defines")
    check.add_argument("config", help="flow file to validate")
    check.add_argument("--json", action="store_true", help="print problems as JSON lines")
    check.add_argument(
        "--live",
        action="store_true",
        help="also read each flow's account once (read only) and hold it to SendPulse's specs",
    )

    commands.add_parser("schema", help="print the flow file JSON Schema (for editors)")

    db = commands.add_parser("db", help="database migrations")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("migrate", help="apply pending migrations")
    db_commands.add_parser("status", help="show applied and pending migrations")

    from connector.delivery_cli import add_parsers as add_delivery_parsers

    add_delivery_parsers(commands)

    from connector.sandbox.command import add_parser as add_sandbox_parser

    add_sandbox_parser(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    try:
        connector_logging.configure(level=args.log_level, fmt=args.log_format)
        handler = _HANDLERS[args.command]
        return handler(args)
    except ConfigInvalid as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except KeyboardInterrupt:
        return EXIT_OK


def _print_problems(exc: ConfigInvalid) -> None:
    count = len(exc.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    from rich.table import Table

    from connector.config import load_file

    try:
        config = load_file(args.config)
    except ConfigInvalid as exc:
        if args.json:
            for problem in exc.problems:
                print(json.dumps(problem.__dict__))
            return EXIT_CONFIG
        raise
    console = _console()
    connections = Table(title="Connections")
    for column in ("name", "provider", "base url", "rate limit", "auth"):
        connections.add_column(column)
    for name, conn in config.connections.items():
        auth = "api key" if conn.api_key is not None else "client credentials"
        connections.add_row(name, conn.provider, str(conn.base_url), str(conn.rate_limit), auth)
    flows = Table(title="Flows")
    for column in ("name", "trigger", "connection", "every", "start", "actions"):
        flows.add_column(column)
    for flow in config.flows:
        flows.add_row(
            flow.name,
            flow.trigger.type,
            flow.trigger.connection or "-",
            _fmt_duration(flow.every.total_seconds()),
            str(flow.start),
            ", ".join(a.type for a in flow.actions),
        )
    console.print(connections)
    console.print(flows)
    console.print(
        f"[green]{args.config} is valid[/green]: "
        f"{len(config.connections)} connections, {len(config.flows)} flows"
    )
    if args.live:
        return _live(config, console)
    return EXIT_OK


def _live(config: Any, console: Any) -> int:
    from rich.table import Table

    from connector.live_check import check_live

    rows = asyncio.run(check_live(config))
    table = Table(title="Live check")
    for column in ("flow", "checked", "result"):
        table.add_column(column)
    for row in rows:
        table.add_row(row.flow, row.check, row.result if row.ok else f"[red]{row.result}[/red]")
    console.print(table)
    failed = [row for row in rows if not row.ok]
    if failed:
        console.print(f"[red]{len(failed)} of {len(rows)} checks differ from the contract[/red]")
        return EXIT_FAILURE
    console.print(f"[green]all {len(rows)} checks ok[/green]")
    return EXIT_OK


def _console() -> Any:
    from rich.console import Console

    # Off a terminal rich assumes 80 columns and cuts names short; piped output stays whole.
    return Console(width=None if sys.stdout.isatty() else 200)


def _fmt_duration(seconds: float) -> str:
    from datetime import timedelta

    from connector.units import format_duration

    return format_duration(timedelta(seconds=seconds))


def _cmd_schema(_args: argparse.Namespace) -> int:
    from connector.config import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def _cmd_db(args: argparse.Namespace) -> int:
    return asyncio.run(_db(args.db_command))


async def _db(action: str) -> int:
    from connector.db import migrate as migrations
    from connector.db.pool import connect, ensure_database, locate

    location = locate()
    try:
        await ensure_database(location.dsn)
        conn = await connect(location.dsn)
        try:
            if action == "migrate":
                applied = await migrations.migrate(conn)
                if applied:
                    for migration in applied:
                        print(f"applied {migration.version:04d}_{migration.name}")
                else:
                    print("nothing to apply; the schema is current")
            else:
                _print_status(await migrations.status(conn))
        finally:
            await conn.close()
    finally:
        if location.embedded is not None and location.embedded.started_here:
            location.embedded.stop()
    return EXIT_OK


def _print_status(rows: list[Any]) -> None:
    from rich.table import Table

    table = Table(title="Migrations")
    for column in ("version", "name", "applied at"):
        table.add_column(column)
    for row in rows:
        applied = row.applied_at.isoformat(timespec="seconds") if row.applied_at else "pending"
        table.add_row(f"{row.version:04d}", row.name, applied)
    _console().print(table)


def _web_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--host",
        default=os.environ.get("HOST", "127.0.0.1"),
        help="web server address (env HOST, default 127.0.0.1; 0.0.0.0 to accept webhooks)",
    )
    # PORT is read when a command needs it, so a bad value breaks only those commands.
    parser.add_argument(
        "--port", type=_port_number, help="web server port (env PORT, default 8080)"
    )
    parser.add_argument("--no-web", action="store_true", help="run without the web server")


def _port_number(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")
    return port


def _port(args: argparse.Namespace) -> int:
    """``--port``, else ``PORT``, else 8080."""
    if args.port is not None:
        return int(args.port)
    text = os.environ.get("PORT", "").strip() or "8080"
    try:
        return _port_number(text)
    except argparse.ArgumentTypeError:
        raise ConfigError(f"PORT={text!r} is not a port number (0 to 65535)") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from connector.config import load_file
    from connector.daemon import run

    config = load_file(args.config)
    return asyncio.run(
        run(
            config,
            config_path=args.config,
            host=args.host,
            port=None if args.no_web else _port(args),
            drain=args.drain,
        )
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import run_demo

    return asyncio.run(
        run_demo(
            args.config,
            sandbox_port=args.sandbox_port,
            receiver_port=args.receiver_port,
            web_port=None if args.no_web else _port(args),
            rate=args.rate,
        )
    )


def _cmd_deliveries(args: argparse.Namespace) -> int:
    from connector.delivery_cli import cmd_deliveries

    return cmd_deliveries(args)


def _cmd_events(args: argparse.Namespace) -> int:
    from connector.delivery_cli import cmd_events_show

    return cmd_events_show(args)


def _cmd_replay(args: argparse.Namespace) -> int:
    from connector.delivery_cli import cmd_replay

    return cmd_replay(args)


def _cmd_verify_webhook(args: argparse.Namespace) -> int:
    from connector.delivery_cli import cmd_verify_webhook

    return cmd_verify_webhook(args)


def _cmd_secret(args: argparse.Namespace) -> int:
    from connector.delivery_cli import cmd_secret

    return cmd_secret(args)


def _cmd_sandbox(args: argparse.Namespace) -> int:
    from connector.sandbox.command import run as run_sandbox

    return run_sandbox(args)


_HANDLERS = {
    "run": _cmd_run,
    "demo": _cmd_demo,
    "check": _cmd_check,
    "schema": _cmd_schema,
    "db": _cmd_db,
    "deliveries": _cmd_deliveries,
    "events": _cmd_events,
    "replay": _cmd_replay,
    "verify-webhook": _cmd_verify_webhook,
    "secret": _cmd_secret,
    "sandbox": _cmd_sandbox,
}


if __name__ == "__main__":
    sys.exit(main())
