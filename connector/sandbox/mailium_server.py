"""A Mailium-style OAuth server (reference §9): authorize, token, revoke, resource.

Its own small aiohttp app, for the Sendloop/Mailium app tests. The "user" always consents:
``/oauth/authorize`` redirects straight back with a one-time ``code``, the ``state`` and a
signed ``accid``/``timestamp``/``hmac``. Codes live 60 s and are single use (a reused code
revokes what it issued); PKCE ``S256`` is checked when a challenge was sent; refresh tokens
rotate, and presenting a spent one revokes the whole family, as strict providers do.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from connector.sandbox.clock import Clock
from connector.sandbox.vendor_signing import signed_query

SCOPES = (
    "system.read account.read list.read list.update subscriber.read subscriber.update "
    "campaign.read campaign.update campaign.schedule"
).split()


@dataclass
class _Client:
    secret: str
    redirect_uris: set[str]


@dataclass
class _Code:
    client_id: str
    redirect_uri: str
    scope: str
    accid: str
    challenge: str | None
    expires_at: float
    used: bool = False
    family: str = ""


@dataclass
class _Grant:
    """An access or refresh token."""

    client_id: str
    accid: str
    family: str
    expires_at: float | None
    revoked: bool = False


@dataclass
class MailiumState:
    """Everything the OAuth server knows; tests change it directly."""

    clock: Clock
    token_ttl: float = 3600.0
    code_ttl: float = 60.0
    accid: str = "1001"
    clients: dict[str, _Client] = field(default_factory=dict)
    codes: dict[str, _Code] = field(default_factory=dict)
    access: dict[str, _Grant] = field(default_factory=dict)
    refresh: dict[str, _Grant] = field(default_factory=dict)
    log: list[tuple[str, str, int]] = field(default_factory=list)

    def revoke_family(self, family: str) -> None:
        for grant in (*self.access.values(), *self.refresh.values()):
            if grant.family == family:
                grant.revoked = True

    def issue(self, client_id: str, accid: str, family: str) -> dict[str, Any]:
        access, refresh = secrets.token_urlsafe(24), secrets.token_urlsafe(24)
        now = self.clock.now()
        self.access[access] = _Grant(client_id, accid, family, now + self.token_ttl)
        self.refresh[refresh] = _Grant(client_id, accid, family, None)
        return {
            "access_token": access,
            "refresh_token": refresh,
            "token_type": "Bearer",
            "expires_in": int(self.token_ttl),
        }

    def calls(self, path: str) -> list[int]:
        return [status for _method, logged, status in self.log if logged == path]


STATE = web.AppKey("mailium_state", MailiumState)


def _error(status: int, error: str, description: str) -> web.Response:
    return web.json_response({"error": error, "error_description": description}, status=status)


async def _body(request: web.Request) -> dict[str, Any]:
    if request.content_type == "application/x-www-form-urlencoded":
        return dict((await request.post()).items())
    text = await request.text()
    try:
        data = json.loads(text) if text.strip() else {}
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


@web.middleware
async def _log(request: web.Request, handler: Any) -> web.StreamResponse:
    response: web.StreamResponse = await handler(request)
    request.app[STATE].log.append((request.method, request.path, response.status))
    return response


async def authorize(request: web.Request) -> web.Response:
    state = request.app[STATE]
    query = request.query
    client = state.clients.get(query.get("client_id", ""))
    redirect_uri = query.get("redirect_uri", "")
    if client is None or redirect_uri not in client.redirect_uris:
        # Never redirect to an unregistered address: answer here instead.
        return _error(400, "invalid_request", "unknown client or redirect_uri")
    if query.get("response_type") != "code":
        return _error(400, "unsupported_response_type", "response_type must be code")
    challenge = query.get("code_challenge")
    if challenge is not None and query.get("code_challenge_method") != "S256":
        return _error(400, "invalid_request", "only S256 code challenges are accepted")
    code = secrets.token_urlsafe(18)
    state.codes[code] = _Code(
        client_id=query["client_id"],
        redirect_uri=redirect_uri,
        scope=query.get("scope", ""),
        accid=state.accid,
        challenge=challenge,
        expires_at=state.clock.now() + state.code_ttl,
        family=secrets.token_hex(8),
    )
    params = {"code": code, "state": query.get("state", ""), "accid": state.accid}
    signed = signed_query(params, client.secret, now=state.clock.datetime())
    raise web.HTTPFound(f"{redirect_uri}?{signed}")


def _pkce_ok(challenge: str | None, verifier: Any) -> bool:
    if challenge is None:
        return True
    if not isinstance(verifier, str):
        return False
    digest = hashlib.sha256(verifier.encode()).digest()
    expected = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    return secrets.compare_digest(expected, challenge)


async def token(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await _body(request)
    client = state.clients.get(str(data.get("client_id", "")))
    if client is None or not secrets.compare_digest(client.secret, str(data.get("client_secret"))):
        return _error(401, "invalid_client", "Client authentication failed")
    grant_type = data.get("grant_type")
    if grant_type == "authorization_code":
        code = state.codes.get(str(data.get("code", "")))
        if code is None or code.client_id != data.get("client_id"):
            return _error(400, "invalid_grant", "unknown authorization code")
        if code.used:
            state.revoke_family(code.family)
            return _error(400, "invalid_grant", "authorization code already used")
        if state.clock.now() >= code.expires_at:
            return _error(400, "invalid_grant", "authorization code expired")
        if data.get("redirect_uri") != code.redirect_uri:
            return _error(400, "invalid_grant", "redirect_uri does not match")
        if not _pkce_ok(code.challenge, data.get("code_verifier")):
            return _error(400, "invalid_grant", "code_verifier does not match")
        code.used = True
        return web.json_response(state.issue(code.client_id, code.accid, code.family))
    if grant_type == "refresh_token":
        presented = str(data.get("refresh_token", ""))
        grant = state.refresh.get(presented)
        if grant is None or grant.client_id != data.get("client_id"):
            return _error(400, "invalid_grant", "unknown refresh token")
        if grant.revoked:
            # A spent refresh token came back: someone raced or stole it. Kill the family.
            state.revoke_family(grant.family)
            return _error(400, "invalid_grant", "refresh token already used or revoked")
        grant.revoked = True
        return web.json_response(state.issue(grant.client_id, grant.accid, grant.family))
    return _error(400, "unsupported_grant_type", "grant_type not supported")


async def revoke(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await _body(request)
    client = state.clients.get(str(data.get("client_id", "")))
    if client is None or not secrets.compare_digest(client.secret, str(data.get("client_secret"))):
        return _error(401, "invalid_client", "Client authentication failed")
    value = str(data.get("token", ""))
    grant = state.refresh.get(value) or state.access.get(value)
    if grant is not None and grant.client_id == data.get("client_id"):
        state.revoke_family(grant.family)
    return web.json_response({})  # RFC 7009: 200 whether or not the token was known


async def resource(request: web.Request) -> web.Response:
    state = request.app[STATE]
    scheme, _, value = request.headers.get("Authorization", "").partition(" ")
    grant = state.access.get(value.strip()) if scheme.lower() == "bearer" else None
    now = state.clock.now()
    if grant is None or grant.revoked or (grant.expires_at is not None and now >= grant.expires_at):
        return _error(401, "invalid_token", "The access token is invalid or expired")
    return web.json_response(
        {"acc_id": grant.accid, "client_id": grant.client_id, "user": {"acc_id": grant.accid}}
    )


def create_mailium_app(state: MailiumState) -> web.Application:
    app = web.Application(middlewares=[_log])
    app[STATE] = state
    app.router.add_get("/oauth/authorize", authorize)
    app.router.add_post("/oauth/token", token)
    app.router.add_post("/oauth/revoke", revoke)
    app.router.add_get("/resource", resource)
    return app


class Mailium:
    """A running Mailium-style server: address, one registered app, and its state."""

    def __init__(self, state: MailiumState, base_url: str, redirect_uri: str) -> None:
        self.state = state
        self.base_url = base_url
        self.client_id = "mailium-app"
        self.client_secret = "mailium-app-secret"  # noqa: S105 - a test credential
        self.redirect_uri = redirect_uri
        state.clients[self.client_id] = _Client(self.client_secret, {redirect_uri})

    @property
    def clock(self) -> Clock:
        return self.state.clock

    def add_redirect_uri(self, uri: str) -> None:
        self.state.clients[self.client_id].redirect_uris.add(uri)

    def signed(self, params: dict[str, str], *, secret: str | None = None) -> str:
        """A query the app store would send (launch, uninstall), signed now."""
        return signed_query(params, secret or self.client_secret, now=self.clock.datetime())

    def authorize_url(self, **params: str) -> str:
        return f"{self.base_url}/oauth/authorize?{urlencode(params)}"


@asynccontextmanager
async def start_mailium(
    *,
    redirect_uri: str = "http://127.0.0.1/apps/mailium/callback",
    token_ttl: float = 3600.0,
    code_ttl: float = 60.0,
    accid: str = "1001",
) -> AsyncIterator[Mailium]:
    """Run the Mailium-style OAuth server on a free loopback port for the block."""
    state = MailiumState(Clock(), token_ttl=token_ttl, code_ttl=code_ttl, accid=accid)
    runner = web.AppRunner(create_mailium_app(state), access_log=None, shutdown_timeout=1.0)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield Mailium(state, f"http://127.0.0.1:{port}", redirect_uri)
    finally:
        await runner.cleanup()
