"""``connector check FILE``: what a valid flow file defines, as tables or one JSON document,
and with ``--live`` one read-only look at each flow's account. ``connector.cli`` loads the
file; this shows it."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any

EXIT_OK = 0
EXIT_FAILURE = 1


def cmd_check(args: argparse.Namespace, config: Any) -> int:
    """Show a flow file that loaded: ``args.json``, ``args.live`` and ``args.config``."""
    summary = _summary(config)
    if args.json:
        document: dict[str, Any] = {"file": args.config, "valid": True, **summary}
        code = EXIT_OK
        if args.live:
            from connector.live_check import check_live

            rows = asyncio.run(check_live(config))
            document["live"] = [
                {"flow": r.flow, "checked": r.check, "ok": r.ok, "result": r.result} for r in rows
            ]
            code = EXIT_OK if all(r.ok for r in rows) else EXIT_FAILURE
        print(json.dumps(document))
        return code
    _print_tables(summary)
    console = _console()
    console.print(
        f"[green]{_escape(args.config)} is valid[/green]: {len(summary['connections'])} "
        f"connections, {len(summary['apps'])} apps, {len(summary['flows'])} flows"
    )
    if args.live:
        return _live(config, console)
    return EXIT_OK


def _summary(config: Any) -> dict[str, Any]:
    """What a valid flow file defines, as plain data (the tables and --json show this)."""
    connections = [
        {
            "name": name,
            "provider": conn.provider,
            "base_url": str(conn.base_url),
            "rate_limit": str(conn.rate_limit),
            "auth": "api key" if conn.api_key is not None else "client credentials",
        }
        for name, conn in config.connections.items()
    ]
    apps = [
        {
            "name": name,
            "provider": app.provider,
            "id": app.app_id or app.client_id,
            "scopes": list(app.scopes),
            "routes": f"/apps/{name}/",
        }
        for name, app in config.apps.items()
    ]
    flows = [
        {
            "name": flow.name,
            "trigger": flow.trigger.type,
            "connection": flow.trigger.connection,
            "installs_of": flow.installs_of,
            "every": _duration(flow.every.total_seconds()),
            "start": str(flow.start),
            "enabled": flow.enabled,
            "actions": [a.type for a in flow.actions],
        }
        for flow in config.flows
    ]
    return {"connections": connections, "apps": apps, "flows": flows}


def _print_tables(summary: dict[str, Any]) -> None:
    from rich.table import Table

    console = _console()
    connections = Table(title="Connections")
    for column in ("name", "provider", "base url", "rate limit", "auth"):
        connections.add_column(column)
    fields = ("name", "provider", "base_url", "rate_limit", "auth")
    for c in summary["connections"]:
        connections.add_row(*(_escape(str(c[k])) for k in fields))
    console.print(connections)
    if summary["apps"]:
        apps = Table(title="Apps")
        for column in ("name", "provider", "app / client id", "scopes", "routes"):
            apps.add_column(column)
        for a in summary["apps"]:
            apps.add_row(
                _escape(a["name"]),
                a["provider"],
                _escape(str(a["id"])),
                _escape(", ".join(a["scopes"]) or "-"),
                _escape(a["routes"]),
            )
        console.print(apps)
    flows = Table(title="Flows")
    for column in ("name", "trigger", "connection", "every", "start", "actions"):
        flows.add_column(column)
    for f in summary["flows"]:
        # A per-install flow runs once for each install of its app, as <flow>@<install>.
        where = f"every install of {f['installs_of']}" if f["installs_of"] else f["connection"]
        flows.add_row(
            _escape(f["name"]),
            f["trigger"],
            _escape(where or "-"),
            f["every"],
            _escape(f["start"]),
            ", ".join(f["actions"]),
        )
    console.print(flows)


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


def _escape(text: str) -> str:
    """Text shown as itself in a rich table, never read as markup."""
    from rich.markup import escape

    return escape(text)


def _duration(seconds: float) -> str:
    from datetime import timedelta

    from connector.units import format_duration

    return format_duration(timedelta(seconds=seconds))
