"""What the soaks share: a receiver's web server and the worker processes they start."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager

import pytest
from aiohttp import web

# The fault soak restarts a Postgres of its own, as the e2e worker tests do.
from tests.e2e.conftest import Daemon, private_postgres  # noqa: F401 - a fixture, shared


@asynccontextmanager
async def serve_hook(
    handle: Callable[[web.Request], Awaitable[web.StreamResponse]],
) -> AsyncIterator[str]:
    """Serve ``handle`` at ``POST /hook`` on a free loopback port; yield the hook's URL."""
    app = web.Application()
    app.router.add_post("/hook", handle)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    try:
        yield f"http://127.0.0.1:{runner.addresses[0][1]}/hook"
    finally:
        await runner.cleanup()


@pytest.fixture
def processes() -> Iterator[list[Daemon]]:
    """Worker processes a soak started; each is killed, if still running, at the end."""
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()
