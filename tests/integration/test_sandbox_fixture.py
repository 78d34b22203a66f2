"""The shared `sb` fixture yields a running sandbox with default settings."""

from __future__ import annotations

import aiohttp

from connector.sandbox.harness import Sandbox


async def test_sandbox_fixture_serves_tokens(sb: Sandbox) -> None:
    assert sb.base_url.startswith("http://127.0.0.1:")
    assert sb.state.settings.rate_limit == 10.0
    async with aiohttp.ClientSession() as session:
        body = {
            "grant_type": "client_credentials",
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
        }
        async with session.post(f"{sb.base_url}/oauth/access_token", json=body) as resp:
            assert resp.status == 200
        async with session.get(f"{sb.base_url}/_sandbox/health") as resp:
            assert (await resp.json())["ok"] is True
