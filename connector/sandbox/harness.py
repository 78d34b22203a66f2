"""`start_sandbox`: the sandbox on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp import web

from connector.sandbox import appdirectory
from connector.sandbox.app import create_app
from connector.sandbox.clock import Clock
from connector.sandbox.faults import Faults
from connector.sandbox.generator import Generator, generator_for
from connector.sandbox.limits import RequestRecord
from connector.sandbox.state import Settings, State
from connector.sandbox.webhooks import Delivery

DEFAULT_CLIENT_ID = "sandbox-client"
DEFAULT_CLIENT_SECRET = "sandbox-secret"  # noqa: S105 - a published test credential


DEFAULT_SENDER = "sender@example.com"


def prepare(state: State) -> None:
    """What every sandbox starts with: the default API client and one active sender."""
    state.auth.add_client(DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET)
    state.add_sender(DEFAULT_SENDER, "Sandbox")


class Sandbox:
    """A running sandbox: its address, its credentials and handles to change it."""

    def __init__(self, state: State, base_url: str) -> None:
        self.state = state
        self.base_url = base_url
        self.client_id = DEFAULT_CLIENT_ID
        self.client_secret = DEFAULT_CLIENT_SECRET

    @property
    def clock(self) -> Clock:
        return self.state.clock

    @property
    def faults(self) -> Faults:
        return self.state.faults

    def add_client(self, client_id: str, client_secret: str) -> None:
        self.state.auth.add_client(client_id, client_secret)

    def requests(self, client_id: str | None = None) -> list[RequestRecord]:
        return self.state.limits.requests(client_id)

    def revoke_tokens(self, client_id: str | None = None) -> int:
        return self.state.auth.revoke(client_id)

    def configure(self, **settings: Any) -> None:
        self.state.configure(**settings)

    @property
    def generator(self) -> Generator:
        """The change generator: `step(n)` makes and reports n changes; `start(rate)`."""
        return generator_for(self.state)

    def mint_code(self, app_id: str, secret: str, user_id: int = 1) -> str:
        """An App Directory login code for the app (registered if new): 60 s, single use."""
        return appdirectory.mint_code(self.state, app_id, secret, user_id)

    async def uninstall(self, client_id: str, url: str) -> int:
        """Uninstall an app install, POSTing SendPulse's uninstall JSON to `url`."""
        return await appdirectory.uninstall(self.state, client_id, url)

    async def flush_webhooks(self) -> list[Delivery]:
        """POST every waiting webhook batch now; returns the deliveries made."""
        return await self.state.webhooks.flush()


@asynccontextmanager
async def start_sandbox(
    *,
    rate_limit: float | None = 10.0,
    token_ttl: float = 3600,
    seed: str | None = None,
    latency: float = 0.0,
    jitter: float = 0.0,
    per_minute: int | None = None,
    frozen_clock: bool = False,
    port: int | None = None,
    **settings: Any,
) -> AsyncIterator[Sandbox]:
    """Run a sandbox on 127.0.0.1 for the `async with` block; yields its `Sandbox` handle.

    `frozen_clock=True` stops the clock's wall-time drift so that only `clock.advance` moves
    it (token expiry, rate-limit windows, campaign progress).
    """
    state = State(
        Clock(frozen=frozen_clock),
        Settings(
            rate_limit=rate_limit,
            per_minute=per_minute,
            token_ttl=token_ttl,
            latency=latency,
            jitter=jitter,
            **settings,
        ),
    )
    prepare(state)
    if seed:
        from connector.sandbox.seed import apply_seed

        apply_seed(state, seed)
    app = create_app(state)
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", port or 0)
    await site.start()
    bound = runner.addresses[0][1]
    try:
        yield Sandbox(state, f"http://127.0.0.1:{bound}")
    finally:
        await runner.cleanup()
