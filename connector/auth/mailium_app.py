"""Sendloop/Mailium app installs: authorization-code grant, signed launches and uninstalls.

``GET  <prefix>/install``    one-time ``state`` + PKCE verifier stored, bound to the browser
                             by a cookie, then a redirect to the provider's consent page;
``GET  <prefix>/callback``   the provider's redirect: hmac (when present) and ``state``
                             checked before any token call; the code is exchanged, the
                             account looked up, the install stored as a connection;
``POST <prefix>/uninstall``  signed by the app store: refresh token revoked, every row tied
                             to the install deleted; 200 ``{}``, also when repeated.
"""

from __future__ import annotations

import hmac
import html
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from connector.auth.crypto import Cipher
from connector.auth.installs import (
    InstallRefused,
    install_connection_id,
    purge_install,
    store_install,
)
from connector.auth.mailium_oauth import (
    DEFAULT_OAUTH_URL,
    MailiumOAuth,
    authorize_url,
    new_pkce,
)
from connector.auth.mailium_signing import parse_query, verify_query
from connector.auth.tokens import CredentialsRefused, IssuedToken, TokenManager
from connector.config import App
from connector.errors import ConnectorError, RetriableError, SignatureInvalid
from connector.http_client.transport import make_limiter
from connector.store import app_installs, oauth_states, tokens_table
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

STATE_TTL = timedelta(minutes=10)
COOKIE = "connector_oauth_state"
MAX_PENDING_STATES = 1000


class InstallBusy(ConnectorError):
    """Too many installs are in progress; answer 503 and store nothing."""


@dataclass(frozen=True)
class Installed:
    connection_id: str
    account_id: str


class MailiumApp:
    """One Sendloop/Mailium app (from the flow file's ``apps:``) and its installs."""

    def __init__(
        self,
        *,
        name: str,
        app: App,
        session: aiohttp.ClientSession,
        pool: asyncpg.Pool,
        cipher: Cipher,
        now: Callable[[], datetime] = utc_now,
        max_states: int = MAX_PENDING_STATES,
    ) -> None:
        if app.client_id is None or app.redirect_uri is None:
            raise ValueError("a Mailium app needs client_id and redirect_uri")
        self.name = name
        self.app = app
        self.provider = app.provider
        self._pool = pool
        self._cipher = cipher
        self._now = now
        self._secret = app.secret.get_secret_value()
        self.redirect_uri = str(app.redirect_uri)
        self.max_states = max_states
        self.oauth = MailiumOAuth(
            session=session,
            limiter=make_limiter(app.rate_limit),
            oauth_url=str(app.base_url or DEFAULT_OAUTH_URL),
            client_id=app.client_id,
            client_secret=self._secret,
            timeout=app.timeout.total_seconds(),
        )

    # -- the grant --------------------------------------------------------------------------

    async def begin(self) -> tuple[str, str]:
        """A fresh one-time state and the provider URL to send the browser to."""
        state = secrets.token_urlsafe(24)
        verifier, challenge = new_pkce()
        async with self._pool.acquire() as conn:
            await oauth_states.prune(conn, now=self._now())
            # Anyone can open the install page: past this many live states, refuse rather
            # than grow the table (they expire within STATE_TTL).
            inserted = await oauth_states.insert(
                conn,
                state=state,
                app=self.name,
                code_verifier=verifier,
                redirect_uri=self.redirect_uri,
                expires_at=self._now() + STATE_TTL,
                max_pending=self.max_states,
            )
        if not inserted:
            log.warning("app_install_shed", app=self.name, pending=self.max_states)
            raise InstallBusy("too many installs are in progress")
        url = authorize_url(
            self.oauth.oauth_url,
            client_id=self.oauth.client_id,
            redirect_uri=self.redirect_uri,
            scopes=self.app.scopes,
            state=state,
            code_challenge=challenge,
        )
        return state, url

    async def complete(self, raw_query: str, *, browser_state: str | None) -> Installed:
        """Check the redirect, exchange its code, store the install; nothing is called
        before ``hmac`` and ``state`` pass."""
        params = parse_query(raw_query)
        if "hmac" in params:
            params = verify_query(
                raw_query, self._secret, now=self._now(), window=self.app.signature_window
            )
        if "error" in params:
            raise InstallRefused(f"the provider refused the install: {params['error'][:100]}")
        state, code = params.get("state"), params.get("code")
        if not state or not code:
            raise InstallRefused("the redirect carries no code or state")
        # As bytes: compare_digest refuses str with anything but ASCII in it.
        if browser_state is None or not hmac.compare_digest(
            browser_state.encode("utf-8", "surrogatepass"), state.encode("utf-8", "surrogatepass")
        ):
            raise InstallRefused("the state does not belong to this browser")
        async with self._pool.acquire() as conn:
            row = await oauth_states.take(conn, state=state)
        if row is None or row["app"] != self.name:
            raise InstallRefused("unknown or already used state")
        if row["expires_at"] <= self._now():
            raise InstallRefused("the state expired; start the install again")
        try:
            token = await self.oauth.exchange_code(
                code,
                redirect_uri=row["redirect_uri"],
                code_verifier=row["code_verifier"],
                scopes=self.app.scopes,
            )
        except CredentialsRefused as exc:
            raise InstallRefused(f"the code was refused: {exc}") from exc
        account = await self.oauth.account_id(token.access_token)
        if "accid" in params and params["accid"] != account:
            raise InstallRefused("the token belongs to another account than the redirect named")
        return await self._store(account, token)

    async def _store(self, account: str, token: IssuedToken) -> Installed:
        connection_id = install_connection_id(self.name, account)
        async with self._pool.acquire() as conn, conn.transaction():
            connection_id = await store_install(
                conn,
                self._cipher,
                connection_id=connection_id,
                provider=self.provider,
                install_id=self.install_id(account),
                account_id=account,
                scopes=self.app.scopes,
                credentials=None,
                token=token,
                now=self._now(),
            )
        log.info("app_installed", app=self.name, connection=connection_id, account=account)
        return Installed(connection_id, account)

    def install_id(self, account: str) -> str:
        return f"{self.provider}:{self.name}:{account}"

    async def uninstall(self, raw_query: str) -> bool:
        """Verify the store's signed request, revoke, purge; False if nothing was installed."""
        params = verify_query(
            raw_query, self._secret, now=self._now(), window=self.app.signature_window
        )
        account = params.get("accid")
        if not account:
            raise SignatureInvalid("the uninstall request names no accid")
        async with self._pool.acquire() as conn:
            row = await app_installs.find(conn, install_id=self.install_id(account))
            if row is None or row["status"] == "uninstalled":
                return False
            tokens = await tokens_table.get(conn, connection_id=row["id"])
        if tokens is not None and tokens["refresh_token"] is not None:
            try:
                await self.oauth.revoke(self._cipher.decrypt(tokens["refresh_token"]))
            except ConnectorError as exc:
                # The store already dropped us; a failed revoke must not keep the data.
                log.warning("app_revoke_failed", connection=row["id"], error=str(exc))
        async with self._pool.acquire() as conn, conn.transaction():
            await purge_install(conn, row["id"])
        return True

    def token_manager(self, connection_id: str) -> TokenManager:
        """Tokens of one install, renewed with the (rotating) refresh token."""
        return TokenManager(
            connection_id=connection_id,
            provider=self.provider,
            pool=self._pool,
            cipher=self._cipher,
            fetch=self.oauth.refresh,
            now=self._now,
        )

    # -- web handlers -----------------------------------------------------------------------

    def routes(self, prefix: str | None = None) -> list[web.RouteDef]:
        base = prefix or f"/apps/{self.name}"
        return [
            web.get(f"{base}/install", self._install),
            web.get(f"{base}/callback", self._callback),
            web.post(f"{base}/uninstall", self._uninstall),
        ]

    async def _install(self, request: web.Request) -> web.StreamResponse:
        try:
            state, url = await self.begin()
        except InstallBusy:
            busy = page(503, "Busy", "Too many installs at once; try again in a moment.")
            busy.headers["Retry-After"] = "60"
            return busy
        response = web.Response(status=302, headers={"Location": url})
        response.set_cookie(
            COOKIE,
            state,
            max_age=int(STATE_TTL.total_seconds()),
            httponly=True,
            samesite="Lax",
            # Behind a TLS-terminating proxy the request itself looks like plain http;
            # the public redirect_uri says how browsers really reach us.
            secure=request.secure or self.redirect_uri.startswith("https://"),
        )
        return response

    async def _callback(self, request: web.Request) -> web.StreamResponse:
        try:
            installed = await self.complete(
                request.rel_url.raw_query_string, browser_state=request.cookies.get(COOKIE)
            )
        except SignatureInvalid as exc:
            log.warning("app_install_refused", app=self.name, reason=str(exc))
            return page(401, "Install refused", "The request's signature did not verify.")
        except InstallRefused as exc:
            log.warning("app_install_refused", app=self.name, reason=str(exc))
            return page(400, "Install refused", str(exc))
        except ConnectorError as exc:
            # The provider's token or account endpoint failed us: not the user's fault, and
            # the code and state are spent, so the hint is to start over.
            retriable = isinstance(exc, RetriableError)
            log.error("oauth_token_failed", app=self.name, error=str(exc), retriable=retriable)
            hint = (
                f"Start the install again in a minute ({self.install_path(request)})."
                if retriable
                else f"Start the install again ({self.install_path(request)}); if this "
                "persists, the provider's answer was not understood: see the worker's log."
            )
            failed = page(
                503 if retriable else 502,
                "Install failed",
                f"The {self.provider} sign-in service could not complete the install. {hint}",
            )
            if retriable:
                failed.headers["Retry-After"] = "60"
            return failed
        response = page(
            200,
            "Connected",
            f"The account {installed.account_id} is connected. You can close this.",
        )
        response.del_cookie(COOKIE)
        return response

    @staticmethod
    def install_path(request: web.Request) -> str:
        return request.path.rsplit("/", 1)[0] + "/install"

    async def _uninstall(self, request: web.Request) -> web.StreamResponse:
        try:
            await self.uninstall(request.rel_url.raw_query_string)
        except SignatureInvalid as exc:
            log.warning("app_uninstall_refused", app=self.name, reason=str(exc))
            return web.json_response({"error": "invalid signature"}, status=401)
        return web.json_response({})


def page(status: int, title: str, text: str) -> web.Response:
    """A small, self-contained HTML page (no scripts, nothing from the request unescaped)."""
    body = (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>{html.escape(title)}</title></head>"
        f"<body><h1>{html.escape(title)}</h1><p>{html.escape(text)}</p></body></html>"
    )
    return web.Response(
        status=status,
        text=body,
        content_type="text/html",
        headers={"Cache-Control": "no-store", "Content-Security-Policy": "default-src 'none'"},
    )
