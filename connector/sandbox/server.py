"""`connector sandbox`: run the sandbox in the foreground until interrupted."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field

import structlog
from aiohttp import web

from connector.sandbox.app import create_app
from connector.sandbox.clock import Clock
from connector.sandbox.generator import generator_for
from connector.sandbox.harness import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, prepare
from connector.sandbox.seed import apply_seed
from connector.sandbox.state import Settings, State

log = structlog.get_logger(__name__)


@dataclass
class Options:
    """What the command line can set."""

    host: str = "127.0.0.1"
    port: int = 8525
    seed: str | None = None
    generate: float = 0.0
    settings: Settings = field(default_factory=Settings)
    fault_rates: dict[str, float] = field(default_factory=dict)


def build_state(options: Options) -> State:
    state = State(Clock(), options.settings)
    prepare(state)
    if options.seed:
        apply_seed(state, options.seed)
    for kind, rate in options.fault_rates.items():
        state.faults.set_rate(kind, rate)
    return state


async def serve(options: Options, *, ready: asyncio.Event | None = None) -> None:
    """Serve until SIGINT/SIGTERM (or cancellation)."""
    state = build_state(options)
    runner = web.AppRunner(create_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, options.host, options.port)
    await site.start()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    if options.generate > 0:
        generator_for(state).start(options.generate)
    log.info(
        "sandbox_started",
        url=f"http://{options.host}:{runner.addresses[0][1]}",
        client_id=DEFAULT_CLIENT_ID,
        client_secret=DEFAULT_CLIENT_SECRET,
        seed=options.seed,
        books=len(state.books),
        rate_limit=options.settings.rate_limit,
        generate=options.generate,
    )
    if ready is not None:
        ready.set()
    try:
        await stop.wait()
    finally:
        log.info("sandbox_stopping")
        await runner.cleanup()
