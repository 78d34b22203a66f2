"""Token calls: client credentials, and the App Directory's install and market tokens."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.sandbox.app import CLIENT_ID, STATE
from connector.sandbox.clock import fmt_market
from connector.sandbox.credentials import Install
from connector.sandbox.wire import RawApiError, body

routes = web.RouteTableDef()

INVALID_CLIENT = {
    "error": "invalid_client",
    "error_description": "Client authentication failed",
    "message": "Client authentication failed",
}


def _oauth_error(status: int, error: str, description: str) -> RawApiError:
    return RawApiError(
        status, {"error": error, "error_description": description, "message": description}
    )


def _credentials(data: dict[str, Any]) -> tuple[str, str]:
    grant = data.get("grant_type")
    if grant is None:
        raise _oauth_error(
            400, "invalid_request", "The grant type was not specified in the request"
        )
    if grant != "client_credentials":
        raise _oauth_error(
            400, "unsupported_grant_type", "The authorization grant type is not supported"
        )
    client_id, client_secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(client_secret, str):
        raise RawApiError(401, INVALID_CLIENT)
    return client_id, client_secret


@routes.post("/oauth/access_token")
async def access_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    client_id, client_secret = _credentials(await body(request))
    # Per-install App Directory keys get their tokens from the market call only (our choice).
    if client_id in state.auth.market_clients or not state.auth.check(client_id, client_secret):
        raise RawApiError(401, INVALID_CLIENT)
    request[CLIENT_ID] = client_id
    ttl = state.settings.token_ttl
    token = state.auth.issue(client_id, state.now(), ttl)
    return web.json_response(
        {"access_token": token.value, "token_type": "Bearer", "expires_in": int(ttl)}
    )


@routes.post("/oauth/access_token/market")
async def market_token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    client_id, client_secret = _credentials(await body(request))
    if client_id not in state.auth.market_clients or not state.auth.check(client_id, client_secret):
        raise RawApiError(401, INVALID_CLIENT)
    request[CLIENT_ID] = client_id
    ttl = state.settings.market_token_ttl
    token = state.auth.issue(client_id, state.now(), ttl)
    return web.json_response(
        {"token_type": "Bearer", "expires_in": int(ttl), "access_token": token.value}
    )


@routes.post("/market-service/oauth/authorize")
async def market_authorize(request: web.Request) -> web.Response:
    """Exchange a login code (valid 60 s, single use) for the install's own keys."""
    state = request.app[STATE]
    data = await body(request)
    app_id, secret, code = data.get("app_id"), data.get("secret"), data.get("code")
    app = state.auth.apps.get(str(app_id)) if app_id is not None else None
    if app is None or secret != app.secret:
        raise RawApiError(401, INVALID_CLIENT)
    grant = state.auth.codes.get(str(code)) if code else None
    if grant is None or grant.used or grant.app_id != app.app_id or state.now() >= grant.expires_at:
        # The failure body for a bad code is not documented; we answer OAuth's invalid_grant.
        raise _oauth_error(400, "invalid_grant", "The authorization code is invalid or expired")
    grant.used = True
    install = state.auth.install(app.app_id, grant.user_id, state.now())
    return web.json_response({"result": True, "data": install_json(install)})


def install_json(install: Install) -> dict[str, Any]:
    return {
        "id": install.id,
        "user_id": install.user_id,
        "app_id": install.app_id,
        "client_id": install.client_id,
        "client_secret": install.client_secret,
        "created_at": fmt_market(install.created),
        "updated_at": fmt_market(install.updated),
    }
