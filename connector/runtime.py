"""What every part of a running worker shares, opened in order and closed in reverse.

:func:`runtime` finds the database (starting the embedded one if it has to), migrates it,
opens the two pools and the HTTP session for the providers; the worker
(:mod:`connector.daemon`), the demo and the dry run build on the :class:`Runtime` it yields.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import asyncpg
import structlog

from connector.auth.crypto import load_secret_key
from connector.db import migrate as migrations
from connector.db.pool import ensure_database, home, locate, pool
from connector.http_client.transport import provider_connector, send_trace
from connector.leases import default_worker_id

log = structlog.get_logger(__name__)


@dataclass
class Runtime:
    """What every part of a running worker shares; built by :func:`runtime`."""

    pool: asyncpg.Pool
    session: aiohttp.ClientSession
    secret_key: bytes
    home: Path
    worker_id: str
    # Tokens and connection rows get their own few connections: a token refresh must never
    # wait for a pooled connection that only a poll waiting for that token could give back.
    token_pool: asyncpg.Pool | None = None


@asynccontextmanager
async def runtime(env: Mapping[str, str] | None = None) -> AsyncIterator[Runtime]:
    """Open the database (starting the embedded one if needed), migrate, open HTTP."""
    env = os.environ if env is None else env
    async with AsyncExitStack() as stack:
        state_home = home(env)
        secret_key = load_secret_key(env, state_home)
        location = await asyncio.to_thread(locate, env)
        if location.embedded is not None and location.embedded.started_here:
            stack.callback(location.embedded.stop)
        await ensure_database(location.dsn)
        db = await stack.enter_async_context(pool(location.dsn, min_size=2, max_size=20))
        token_db = await stack.enter_async_context(pool(location.dsn, min_size=1, max_size=4))
        async with db.acquire() as conn:
            applied = await migrations.migrate(conn)
        log.info("database_ready", migrations_applied=len(applied))
        session = await stack.enter_async_context(
            aiohttp.ClientSession(
                headers={"User-Agent": "sendpulse-connector"},
                connector=provider_connector(),
                trace_configs=[send_trace()],
            )
        )
        yield Runtime(
            pool=db,
            session=session,
            secret_key=secret_key,
            home=state_home,
            worker_id=env.get("CONNECTOR_WORKER_ID") or default_worker_id(),
            token_pool=token_db,
        )
