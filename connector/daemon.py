"""``connector run``: one owner opens every resource in order and closes them in reverse."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import structlog

from connector.config import Config
from connector.db import migrate as migrations
from connector.db.pool import ensure_database, locate, pool

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """Everything a running worker holds; built by :func:`runtime`."""

    config: Config
    pool: asyncpg.Pool


@asynccontextmanager
async def runtime(config: Config) -> AsyncIterator[Runtime]:
    """Open the database (starting the embedded one if needed), migrate, and yield."""
    async with AsyncExitStack() as stack:
        location = await asyncio.to_thread(locate)
        if location.embedded is not None and location.embedded.started_here:
            stack.callback(location.embedded.stop)
        await ensure_database(location.dsn)
        db = await stack.enter_async_context(pool(location.dsn))
        async with db.acquire() as conn:
            applied = await migrations.migrate(conn)
        log.info("database_ready", migrations_applied=len(applied))
        yield Runtime(config=config, pool=db)


async def run(config: Config) -> int:
    """Run until SIGINT or SIGTERM; return the exit code."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    async with runtime(config):
        log.info(
            "worker_started",
            config=config.file,
            flows=len(config.flows),
            connections=len(config.connections),
        )
        await stop.wait()
        log.info("worker_stopping")
    log.info("worker_stopped")
    return 0
