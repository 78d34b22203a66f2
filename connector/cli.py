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

import structlog

from connector import __version__
from connector import logging as connector_logging
from connector.catalog import CATALOG
from connector.errors import ConfigError, ConfigInvalid, StartupFailed

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2
DEFAULT_CONFIG = "config/flows.yaml"
# Commands that print a report: the embedded Postgres starting or being reused is noise there.
QUIET_DATABASE = frozenset({"deliveries", "events", "status", "check", "replay", "test", "db"})

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

    from connector.db_cli import add_parser as add_db_parser

    add_db_parser(commands)

    from connector.delivery_cli import add_parsers as add_delivery_parsers

    add_delivery_parsers(commands)

    from connector.status_cli import add_parser as add_status_parser

    add_status_parser(commands, DEFAULT_CONFIG)

    from connector.dry_run_cli import add_parser as add_test_parser

    add_test_parser(commands, DEFAULT_CONFIG)

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
        if args.command in QUIET_DATABASE:
            connector_logging.quiet_embedded_database()
        handler = _HANDLERS[args.command]
        return handler(args)
    except ConfigInvalid as exc:
        _print_problems(exc)
        return EXIT_CONFIG
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_CONFIG
    except StartupFailed as exc:
        structlog.get_logger("connector").error(exc.event, **exc.fields)
        if sys.stderr.isatty():
            print(f"error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except KeyboardInterrupt:
        return EXIT_OK
    except BrokenPipeError:
        # The reader left (`| head`): what it did not read is not wanted. Point stdout at
        # /dev/null so the interpreter's last flush does not fail a second time.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return EXIT_OK


def _print_problems(exc: ConfigInvalid) -> None:
    count = len(exc.problems)
    print(f"{count} problem{'s' if count != 1 else ''} found:", file=sys.stderr)
    for problem in exc.problems:
        print(f"  {problem}", file=sys.stderr)


def _cmd_check(args: argparse.Namespace) -> int:
    from connector.check_cli import cmd_check
    from connector.config import load_file

    try:
        config = load_file(args.config, CATALOG)
    except ConfigInvalid as exc:
        if args.json:
            for problem in exc.problems:
                print(json.dumps(problem.__dict__))
            return EXIT_CONFIG
        raise
    return cmd_check(args, config)


def _cmd_db(args: argparse.Namespace) -> int:
    from connector.db_cli import cmd_db

    return cmd_db(args)


def _cmd_schema(_args: argparse.Namespace) -> int:
    from connector.config import json_schema

    print(json.dumps(json_schema(CATALOG), indent=2))
    return EXIT_OK


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
    parser.add_argument(
        "--admin-host",
        default=os.environ.get("ADMIN_HOST", "127.0.0.1"),
        help=(
            "admin listener address: /readyz, /metrics, /status (env ADMIN_HOST, default "
            "127.0.0.1; anywhere else needs CONNECTOR_ADMIN_TOKEN or CONNECTOR_ADMIN_USER "
            "and CONNECTOR_ADMIN_PASSWORD)"
        ),
    )
    parser.add_argument(
        "--admin-port", type=_port_number, help="admin listener port (env ADMIN_PORT, default 8081)"
    )


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


def _admin_port(args: argparse.Namespace) -> int | None:
    """``--admin-port``, else ``ADMIN_PORT``, else 8081; None without a web server."""
    if args.no_web:
        return None
    if args.admin_port is not None:
        return int(args.admin_port)
    text = os.environ.get("ADMIN_PORT", "").strip() or "8081"
    try:
        return _port_number(text)
    except argparse.ArgumentTypeError:
        raise ConfigError(f"ADMIN_PORT={text!r} is not a port number (0 to 65535)") from None


def _cmd_run(args: argparse.Namespace) -> int:
    from connector.config import load_file
    from connector.daemon import run
    from connector.progress_bar import show_polls_on_terminal

    config = load_file(args.config, CATALOG)
    show_polls_on_terminal(connector_logging.chosen_format)
    return asyncio.run(
        run(
            config,
            config_path=args.config,
            host=args.host,
            port=None if args.no_web else _port(args),
            drain=args.drain,
            admin_host=args.admin_host,
            admin_port=_admin_port(args),
        )
    )


def _cmd_demo(args: argparse.Namespace) -> int:
    from connector.demo import run_demo
    from connector.progress_bar import show_polls_on_terminal

    show_polls_on_terminal(connector_logging.chosen_format)

    return asyncio.run(
        run_demo(
            args.config,
            sandbox_port=args.sandbox_port,
            receiver_port=args.receiver_port,
            web_port=None if args.no_web else _port(args),
            admin_port=_admin_port(args),
            admin_host=args.admin_host,
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


def _cmd_status(args: argparse.Namespace) -> int:
    from connector.status_cli import cmd_status

    return cmd_status(args)


def _cmd_test(args: argparse.Namespace) -> int:
    from connector.dry_run_cli import cmd_test

    return cmd_test(args)


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
    "status": _cmd_status,
    "test": _cmd_test,
}


if __name__ == "__main__":
    sys.exit(main())
