"""Token calls, bearer checks, expiry and revocation."""

from __future__ import annotations

import aiohttp

from connector.sandbox.harness import Sandbox, start_sandbox
from tests.integration.sandbox.conftest import Api

INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": "Client authentication failed",
    "message": "Client authentication failed",
}


async def test_token_from_json_body(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"grant_type": "client_credentials", "client_id": sb.client_id}
        body["client_secret"] = sb.client_secret
        async with session.post(f"{sb.base_url}/oauth/access_token", json=body) as resp:
            assert resp.status == 200
            data = await resp.json()
    assert set(data) == {"access_token", "token_type", "expires_in"}
    assert data["token_type"] == "Bearer"
    assert data["expires_in"] == 3600


async def test_token_from_form_body_and_custom_ttl() -> None:
    async with start_sandbox(token_ttl=120) as sb, aiohttp.ClientSession() as session:
        form = {
            "grant_type": "client_credentials",
            "client_id": sb.client_id,
            "client_secret": sb.client_secret,
        }
        async with session.post(f"{sb.base_url}/oauth/access_token", data=form) as resp:
            assert resp.status == 200
            assert (await resp.json())["expires_in"] == 120


async def test_bad_credentials_are_invalid_client(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        for body in (
            {"grant_type": "client_credentials", "client_id": sb.client_id, "client_secret": "x"},
            {"grant_type": "client_credentials", "client_id": "nobody", "client_secret": "x"},
            {"grant_type": "client_credentials"},
        ):
            async with session.post(f"{sb.base_url}/oauth/access_token", json=body) as resp:
                assert resp.status == 401
                assert await resp.json() == INVALID_CLIENT


async def test_wrong_grant_type_is_rejected(sb: Sandbox) -> None:
    async with aiohttp.ClientSession() as session:
        body = {"grant_type": "password", "client_id": sb.client_id, "client_secret": "x"}
        async with session.post(f"{sb.base_url}/oauth/access_token", json=body) as resp:
            assert resp.status == 400
            assert (await resp.json())["error"] == "unsupported_grant_type"
        async with session.post(f"{sb.base_url}/oauth/access_token", data="{") as resp:
            assert resp.status == 400


async def test_added_client_can_log_in(api: Api) -> None:
    api.sb.add_client("other", "other-secret")
    token = await api.login("other", "other-secret")
    status, _ = await api.get("/addressbooks", token=token)
    assert status == 200
    assert [r.client_id for r in api.sb.requests("other")] == ["other", "other"]


async def test_missing_or_unknown_token_is_401(api: Api) -> None:
    status, data = await api.get("/addressbooks", token="nope")
    assert (status, data) == (401, {"message": "Unauthorized", "error_code": 401})
    async with api.session.get(f"{api.sb.base_url}/addressbooks") as resp:
        assert resp.status == 401
    async with api.session.get(
        f"{api.sb.base_url}/addressbooks", headers={"Authorization": "Basic abc"}
    ) as resp:
        assert resp.status == 401


async def test_token_expires_on_the_sandbox_clock(api: Api) -> None:
    assert (await api.get("/addressbooks"))[0] == 200
    api.sb.clock.advance(3599)
    assert (await api.get("/addressbooks"))[0] == 200
    api.sb.clock.advance(2)
    status, data = await api.get("/addressbooks")
    assert status == 401
    assert data["error_code"] == 401
    await api.login()
    assert (await api.get("/addressbooks"))[0] == 200


async def test_revoked_tokens_answer_401(api: Api) -> None:
    old = api.token
    api.sb.add_client("other", "s2")
    other = await api.login("other", "s2")
    assert api.sb.revoke_tokens(api.sb.client_id) == 1
    assert (await api.get("/addressbooks", token=old))[0] == 401
    assert (await api.get("/addressbooks", token=other))[0] == 200
    api.sb.revoke_tokens()
    assert (await api.get("/addressbooks", token=other))[0] == 401


async def test_api_key_never_expires(api: Api) -> None:
    key = api.sb.state.auth.add_api_key(api.sb.client_id)
    api.sb.clock.advance(10 * 86400)
    assert (await api.get("/addressbooks", token=key))[0] == 200


async def test_request_log_records_each_call(api: Api) -> None:
    await api.get("/addressbooks?limit=5")
    await api.get("/addressbooks/999")
    records = api.sb.requests(api.sb.client_id)
    assert [(r.method, r.path, r.query, r.status) for r in records] == [
        ("POST", "/oauth/access_token", "", 200),
        ("GET", "/addressbooks", "limit=5", 200),
        ("GET", "/addressbooks/999", "", 404),
    ]
    assert api.sb.state.limits.counters[api.sb.client_id] == 3
