"""The worker's HTTP server: health, readiness, metrics, and the routes other parts mount.

Health says the process is alive. Readiness says it can do its job now: the database answers,
the schema is current and the scheduler runs.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import asyncpg
import structlog
from aiohttp import web

from connector import metrics
from connector.db import migrate as migrations
from connector.errors import StartupFailed

log = structlog.get_logger(__name__)

READY_TIMEOUT = 2.0


@dataclass
class WebState:
    """What the handlers read: the pool and a way to ask if the scheduler runs."""

    pool: asyncpg.Pool
    scheduler_running: Callable[[], bool]
    extra_checks: dict[str, Callable[[], bool]] = field(default_factory=dict)


STATE = web.AppKey("state", WebState)


async def healthz(_request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


async def readyz(request: web.Request) -> web.Response:
    state = request.app[STATE]
    checks: dict[str, str] = {}
    try:
        async with asyncio.timeout(READY_TIMEOUT):
            async with state.pool.acquire() as conn:
                current = await migrations.is_current(conn)
        checks["database"] = "ok"
        checks["migrations"] = "ok" if current else "pending"
    except Exception as exc:
        # Whatever stops us reaching the database means "not ready", never a 500.
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["scheduler"] = "ok" if state.scheduler_running() else "stopped"
    for name, check in state.extra_checks.items():
        checks[name] = "ok" if check() else "failing"
    ready = all(value == "ok" for value in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "not_ready", "checks": checks},
        status=200 if ready else 503,
    )


async def metrics_handler(_request: web.Request) -> web.Response:
    return web.Response(body=metrics.render(), content_type="text/plain", charset="utf-8")


def build_app(
    state: WebState, routes: Iterable[web.AbstractRouteDef] = (), *, admin: bool = True
) -> web.Application:
    """The application: built-in routes plus those of auth and webhook intake.

    With ``admin=False`` (a worker with an admin listener, see ``connector.admin``) it keeps
    only ``/healthz`` of its own: readiness and metrics are served on the admin listener.
    """
    app = web.Application(client_max_size=1024 * 1024)
    app[STATE] = state
    app.add_routes([web.get("/healthz", healthz)])
    if admin:
        app.add_routes([web.get("/readyz", readyz), web.get("/metrics", metrics_handler)])
    app.add_routes(list(routes))
    return app


async def serve(
    app: web.Application, host: str, port: int, *, listener: str = "public"
) -> web.AppRunner:
    """Start serving ``app``; the caller owns the returned runner and cleans it up."""
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except OSError as exc:
        await runner.cleanup()
        # asyncio wraps the bind error's text in its own sentence; the errno alone is clear.
        error = (os.strerror(exc.errno) if exc.errno else str(exc)).lower()
        flag = "--admin-port or ADMIN_PORT" if listener == "admin" else "--port or PORT"
        raise StartupFailed(
            "web_server_failed",
            f"cannot serve the {listener} listener on {host}:{port}: {error} "
            f"(set {flag} to a free port)",
            listener=listener,
            host=host,
            port=port,
            error=error,
        ) from exc
    # Port 0 picks a free port: log the one the system gave.
    bound = runner.addresses[0][1] if runner.addresses else port
    log.info("web_server_started", listener=listener, host=host, port=bound)
    return runner
