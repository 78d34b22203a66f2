"""The shared `sandbox` fixture yields a running sandbox with default settings."""

from __future__ import annotations

import aiohttp

from connector.sandbox.testing import Sandbox


async def test_sandbox_fixture_serves_tokens(sandbox: Sandbox) -> None:
    assert sandbox.base_url.startswith("http://127.0.0.1:")
    assert sandbox.state.settings.rate_limit == 10.0
    async with aiohttp.ClientSession() as session:
        body = {
            "grant_type": "client_credentials",
            "client_id": sandbox.client_id,
            "client_secret": sandbox.client_secret,
        }
        async with session.post(f"{sandbox.base_url}/oauth/access_token", json=body) as resp:
            assert resp.status == 200
        async with session.get(f"{sandbox.base_url}/_sandbox/health") as resp:
            assert (await resp.json())["ok"] is True
