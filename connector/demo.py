"""``connector demo``: the sandbox, a webhook receiver and a worker, in one process.

What ``make run`` starts. The sandbox (seeded with the ``demo`` account and a generator that
keeps adding, unsubscribing and moving things along) stands in for SendPulse; the receiver
verifies each signed webhook; the worker polls the sandbox and delivers to both the receiver
and ``.connector/demo-events.jsonl``. Ctrl-C stops all three.
"""

from __future__ import annotations

import os
from contextlib import AsyncExitStack

import asyncpg
import structlog
from aiohttp import web

from connector.admin import AdminAccess
from connector.catalog import CATALOG
from connector.config import Config, load_file
from connector.daemon import Worker, runtime
from connector.demo_receiver import Receiver, create_app
from connector.errors import ConfigError
from connector.sandbox.harness import start_sandbox
from connector.store import demo_reset

log = structlog.get_logger(__name__)

DEMO_SECRET = "whsec_ZGVtby1zZWNyZXQtZm9yLWxvY2FsLXVzZS1vbmx5"  # noqa: S105 - demo only


class PortTaken(ConfigError):
    """A port the demo listens on is in use: choose another with the flag named."""


def _port_taken(exc: OSError, what: str, port: int, flag: str) -> PortTaken:
    return PortTaken(
        f"the {what} cannot listen on 127.0.0.1:{port} ({exc.strerror or exc}); "
        f"stop what uses it or choose another port with {flag}"
    )


async def reset_demo_state(pool: asyncpg.Pool, config: Config, sandbox_url: str) -> list[str]:
    """Forget what earlier runs of the flows polling this sandbox saw; return those flows.

    The sandbox starts from its seed every run, so an earlier run's snapshots would make the
    same subscribers, statuses and stages count again as new changes, under new ids. Flows on
    any other account (a real one, through SENDPULSE_BASE_URL) keep their state.
    """
    sandbox = sandbox_url.rstrip("/")
    connections = [
        name
        for name, conn in config.connections.items()
        if str(conn.base_url).rstrip("/") == sandbox
    ]
    flows = [f.name for f in config.flows if f.trigger.connection in connections]
    if not flows:
        return []
    async with pool.acquire() as conn, conn.transaction():
        await demo_reset.forget(conn, flow_names=flows, connection_ids=connections)
    log.info(
        "demo_state_reset",
        flows=flows,
        reason="the sandbox starts from its seed each run, so its flows start afresh too",
    )
    return flows


async def run_demo(
    config_path: str,
    *,
    sandbox_port: int = 8525,
    receiver_port: int = 8526,
    web_port: int | None = 8080,
    admin_port: int | None = None,
    admin_host: str = "127.0.0.1",
    rate: float = 1.0,
) -> int:
    """Run the demo until SIGINT/SIGTERM; return the exit code."""
    # The demo flow file reads these; set them before it is loaded.
    os.environ.setdefault("SENDPULSE_BASE_URL", f"http://127.0.0.1:{sandbox_port}")
    os.environ.setdefault("DEMO_WEBHOOK_URL", f"http://127.0.0.1:{receiver_port}/hooks/demo")
    os.environ.setdefault("DEMO_WEBHOOK_SECRET", DEMO_SECRET)
    config = load_file(config_path, CATALOG)
    async with AsyncExitStack() as stack:
        try:
            sandbox = await stack.enter_async_context(
                # Campaigns move through review and sending in seconds, not minutes, so the
                # demo shows their status changes within its first minute.
                start_sandbox(
                    seed="demo",
                    port=sandbox_port,
                    rate_limit=10.0,
                    campaign_review_seconds=10.0,
                    campaign_send_seconds=30.0,
                )
            )
        except OSError as exc:
            raise _port_taken(exc, "sandbox", sandbox_port, "--sandbox-port") from None
        sandbox.generator.start(rate)
        stack.callback(sandbox.generator.stop)
        log.info("demo_sandbox_started", url=sandbox.base_url, changes_per_s=rate)

        receiver = Receiver([os.environ["DEMO_WEBHOOK_SECRET"]])
        runner = web.AppRunner(create_app(receiver), access_log=None, handle_signals=False)
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        try:
            await web.TCPSite(runner, "127.0.0.1", receiver_port).start()
        except OSError as exc:
            raise _port_taken(exc, "webhook receiver", receiver_port, "--receiver-port") from None
        log.info("demo_receiver_started", url=os.environ["DEMO_WEBHOOK_URL"])

        rt = await stack.enter_async_context(runtime())
        await reset_demo_state(rt.pool, config, sandbox.base_url)
        worker = Worker(
            rt,
            config,
            config_path=config_path,
            port=web_port,
            admin_host=admin_host,
            admin_port=admin_port,
            admin_access=AdminAccess.from_env(),
        )
        code = await worker.run()
        log.info(
            "demo_finished",
            webhooks_received=receiver.received,
            duplicates_dropped=receiver.duplicates,
            rejected=receiver.rejected,
        )
        return code
