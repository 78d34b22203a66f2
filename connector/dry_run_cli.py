"""``connector test FLOW [--deliver]``: try a flow's trigger once, changing nothing."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
from typing import Any

from connector.catalog import CATALOG
from connector.config import Config, Flow
from connector.dry_run import Found, Trial

EXIT_OK = 0
EXIT_FAILURE = 1


def add_parser(commands: Any, default_config: str) -> None:
    test = commands.add_parser(
        "test",
        help="poll a flow's trigger once, changing nothing, and print what it would emit",
    )
    test.add_argument("flow", metavar="FLOW", help="the flow's name")
    test.add_argument(
        "--config",
        "-c",
        default=os.environ.get("CONNECTOR_CONFIG", default_config),
        help=f"flow file (env CONNECTOR_CONFIG, default {default_config})",
    )
    test.add_argument(
        "--deliver",
        action="store_true",
        help="send one item through the flow's actions, marked as a test, keeping no row",
    )
    test.add_argument("--samples", type=int, default=3, help="samples when nothing is new (3)")
    test.add_argument("--json", action="store_true", help="JSON lines instead of prose")


def cmd_test(args: argparse.Namespace) -> int:
    from connector.config import load_file
    from connector.dry_run import find_flow
    from connector.errors import ConfigError

    config = load_file(args.config, CATALOG)
    flow = find_flow(config, args.flow)
    if flow.trigger.connection is None:
        raise ConfigError(f"flow {flow.name!r} polls no connection; there is nothing to try")
    if args.samples < 1:
        raise ConfigError("--samples must be at least 1")
    return asyncio.run(_test(config, flow, args))


async def _test(config: Config, flow: Flow, args: argparse.Namespace) -> int:
    from connector.daemon import runtime
    from connector.dry_run import deliver_test, trial
    from connector.egress import EgressPolicy, guarded_session
    from connector.errors import ConnectorError
    from connector.progress_bar import bar
    from connector.providers.provider_clients import ProviderClients

    async with runtime() as rt:
        providers = ProviderClients(
            session=rt.session,
            pool=rt.token_pool or rt.pool,
            config=config,
            secret_key=rt.secret_key,
            worker_id=rt.worker_id,
        )
        await providers.ensure_connections()
        client = providers.sendpulse(flow.trigger.connection or "")
        try:
            with bar(f"polling {flow.name}") as shown:
                async with rt.pool.acquire() as conn:
                    result = await trial(
                        config,
                        flow,
                        client=client,
                        conn=conn,
                        samples=args.samples,
                        on_page=lambda pages, items: shown.update(items=items, pages=pages),
                    )
        except ConnectorError as exc:
            print(f"error: the trigger failed: {type(exc).__name__}: {exc}")
            return EXIT_FAILURE
        _print_trial(result, as_json=args.json)
        if not args.deliver:
            return EXIT_OK
        if not result.found:
            print("nothing to deliver: the trigger returned no items at all")
            return EXIT_FAILURE
        policy = EgressPolicy(config.document.egress.allow_networks)
        async with guarded_session(policy) as http:
            outcomes = await deliver_test(
                config, flow, result.found[0], http=http, providers=providers
            )
        for outcome in outcomes:
            if args.json:
                print(json.dumps({"test_delivery": outcome.__dict__}, ensure_ascii=False))
            else:
                print(f"test delivery via {outcome.action}: {outcome.outcome} ({outcome.summary})")
        return EXIT_FAILURE if any(o.outcome == "failed" for o in outcomes) else EXIT_OK


def _print_trial(result: Trial, *, as_json: bool) -> None:
    if as_json:
        for found in result.found:
            print(json.dumps({"sample": found.sample, "body": found.body()}, ensure_ascii=False))
        return
    new = result.new
    print(
        f"{result.flow}: one poll, {result.requests} requests, {result.items_seen} items; "
        "nothing stored or sent"
    )
    if new:
        print(f"{len(new)} new item(s) the next poll would emit, as actions receive them:")
    elif result.found:
        print(
            f"nothing new since the last poll; the {len(result.found)} most recent item(s) "
            "as SAMPLES, as actions would receive them:"
        )
    else:
        print("nothing new, and the trigger returned no items to show as samples")
    for index, found in enumerate(result.found, 1):
        label = "sample" if found.sample else "new"
        print(f"--- {label} {index} of {len(result.found)}")
        print(_pretty(found))


def _pretty(found: Found) -> str:
    return json.dumps(found.body(), ensure_ascii=False, indent=2)
