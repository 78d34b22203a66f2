"""The `connector sandbox` subcommand: its flags and its handler."""

from __future__ import annotations

import argparse
import asyncio
import sys
from typing import Any

from connector.sandbox.faults import KINDS


def add_parser(commands: Any) -> None:
    """Add `sandbox` to the CLI's subcommands."""
    sandbox = commands.add_parser(
        "sandbox",
        help="run the local SendPulse sandbox (a fake SendPulse API for trying flows)",
        description=(
            "Serve a local, in-memory SendPulse API. Credentials: sandbox-client / "
            "sandbox-secret. Control API under /_sandbox/ (see connector/sandbox/README.md)."
        ),
    )
    sandbox.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
    sandbox.add_argument("--port", type=int, default=8525, help="port (8525; 0 picks one)")
    sandbox.add_argument(
        "--seed",
        default="demo",
        help="starting data: demo (the default), none (an empty account), big:N, or demo+big:N",
    )
    sandbox.add_argument(
        "--generate",
        type=float,
        default=0.0,
        metavar="RATE",
        help="keep making changes (subscribers, campaigns, deals) at RATE per second",
    )
    sandbox.add_argument(
        "--rate-limit",
        default="10",
        metavar="N",
        help="requests per second per client before HTTP 429 (10; 'off' for none)",
    )
    sandbox.add_argument("--per-minute", type=int, help="optional per-minute quota per client")
    sandbox.add_argument("--token-ttl", type=float, default=3600, help="token lifetime, seconds")
    sandbox.add_argument("--latency", type=float, default=0.0, help="added delay, seconds")
    sandbox.add_argument("--jitter", type=float, default=0.0, help="extra random delay, seconds")
    sandbox.add_argument(
        "--fault-rate",
        action="append",
        default=[],
        metavar="KIND=P",
        help=f"random faults, KIND one of {', '.join(KINDS)}; P a probability (repeatable)",
    )
    sandbox.add_argument(
        "--webhook-interval", type=float, default=60.0, help="seconds between webhook batches"
    )
    sandbox.add_argument("--webhook-batch", type=int, default=100, help="events per batch (100)")


def options_from(args: argparse.Namespace) -> Any:
    from connector.sandbox.server import Options
    from connector.sandbox.state import Settings

    rate = None if str(args.rate_limit).lower() in ("off", "none", "0") else float(args.rate_limit)
    fault_rates = {}
    for spec in args.fault_rate:
        kind, sep, probability = spec.partition("=")
        if not sep or kind not in KINDS:
            raise ValueError(f"--fault-rate wants KIND=P with KIND one of {', '.join(KINDS)}")
        fault_rates[kind] = float(probability)
    settings = Settings(
        rate_limit=rate,
        per_minute=args.per_minute,
        token_ttl=args.token_ttl,
        latency=args.latency,
        jitter=args.jitter,
        webhook_interval=args.webhook_interval,
        webhook_batch=args.webhook_batch,
    )
    seed = None if args.seed.strip().lower() == "none" else args.seed
    return Options(args.host, args.port, seed, args.generate, settings, fault_rates)


def run(args: argparse.Namespace) -> int:
    """Serve in the foreground until Ctrl-C; 2 for bad flags."""
    from connector.sandbox.seed import parse_seed
    from connector.sandbox.server import serve

    try:
        options = options_from(args)
        if options.seed:
            parse_seed(options.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    asyncio.run(serve(options))
    return 0
