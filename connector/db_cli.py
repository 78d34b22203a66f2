"""``connector db``: migrations (``migrate``, ``status``) and the embedded server of
``CONNECTOR_HOME`` (``stop``, ``clean``). ``connector.cli`` parses; these do the work."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from typing import TYPE_CHECKING, Any

from connector.errors import ConfigError

if TYPE_CHECKING:
    import asyncpg

EXIT_OK = 0
EXIT_CONFIG = 2


def add_parser(commands: Any) -> None:
    db = commands.add_parser("db", help="database migrations and the embedded server")
    db_commands = db.add_subparsers(dest="db_command", metavar="ACTION", required=True)
    db_commands.add_parser("migrate", help="apply pending migrations")
    db_commands.add_parser("status", help="show applied and pending migrations")
    db_commands.add_parser("stop", help="stop the embedded server of CONNECTOR_HOME")
    clean = db_commands.add_parser(
        "clean", help="stop and delete the embedded database of CONNECTOR_HOME (all its data)"
    )
    clean.add_argument("--yes", action="store_true", help="really delete it")


def cmd_db(args: argparse.Namespace) -> int:
    if args.db_command in ("stop", "clean"):
        return _db_embedded(args)
    return asyncio.run(_db(args.db_command))


def _db_embedded(args: argparse.Namespace) -> int:
    """``db stop`` / ``db clean``: the embedded cluster of CONNECTOR_HOME, never DATABASE_URL."""
    from connector.db.embedded import clean_cluster, stop_cluster
    from connector.db.pool import home

    if os.environ.get("DATABASE_URL"):
        raise ConfigError(
            f"db {args.db_command} manages the embedded database only; DATABASE_URL is set"
        )
    root = home() / "postgres"
    where = root.resolve() if root.is_symlink() else root
    if args.db_command == "stop":
        stopped = stop_cluster(root)
        print(f"stopped the embedded database in {where}" if stopped else "it was not running")
        return EXIT_OK
    if not args.yes:
        print(f"this deletes the embedded database in {where} and all its data; add --yes")
        return EXIT_CONFIG
    removed = clean_cluster(root)
    for path in removed:
        print(f"removed {path}")
    if not removed:
        print(f"nothing to remove: no embedded database in {where}")
    return EXIT_OK


async def _db(action: str) -> int:
    from connector.db import migrate as migrations
    from connector.db.command_db import with_command_db

    async def work(conn: asyncpg.Connection) -> None:
        if action == "migrate":
            applied = await migrations.migrate(conn)
            if applied:
                for migration in applied:
                    print(f"applied {migration.version:04d}_{migration.name}")
            else:
                print("nothing to apply; the schema is current")
        else:
            _print_status(await migrations.status(conn))

    await with_command_db(work, manages_schema=True)
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


def _console() -> Any:
    from rich.console import Console

    # Off a terminal rich assumes 80 columns and cuts names short; piped output stays whole.
    return Console(width=None if sys.stdout.isatty() else 200)
