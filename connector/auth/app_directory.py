"""SendPulse App Directory installs (reference §1): the Login URL and the Uninstall URL.

Login: SendPulse sends the browser to our Login URL with a one-minute ``code`` (by GET or
POST). We exchange it at ``/market-service/oauth/authorize`` with the app's ``app_id`` and
``secret`` for the install's own client keys, fetch its first token from
``/oauth/access_token/market``, and store the install as a connection.

Uninstall: SendPulse POSTs the install's JSON (``id, user_id, app_id, client_id,
client_secret, …``). The payload carries no signature, so it is authenticated by its
``client_id`` and ``client_secret``, which only SendPulse and we know; a match deletes every
row tied to the install, the connection included. Anything else gets the same 401 and
changes nothing: wrong keys, keys we hold none of (or cannot decrypt), installs we never saw
and repeats of an uninstall already done (its keys are gone with it).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiohttp import web

from connector.auth.client_credentials import MARKET_TOKEN_PATH, fetch_client_credentials
from connector.auth.crypto import Cipher, UndecryptableSecret
from connector.auth.installs import (
    InstallRefused,
    install_connection_id,
    purge_install,
    store_install,
)
from connector.auth.mailium_app import page
from connector.auth.tokens import CredentialsRefused
from connector.config import DEFAULT_BASE_URL, App
from connector.errors import ConnectorError, RetriableError
from connector.http_client.api_errors import ApiError
from connector.http_client.parsing import decode_json
from connector.http_client.transport import make_limiter, send
from connector.store import app_installs, connections
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

AUTHORIZE_PATH = "/market-service/oauth/authorize"
LOGIN_QUEUE_SECONDS = 5


class AppDirectory:
    """One SendPulse App Directory app (from the flow file's ``apps:``) and its installs."""

    def __init__(
        self,
        *,
        name: str,
        app: App,
        session: aiohttp.ClientSession,
        pool: asyncpg.Pool,
        cipher: Cipher,
        now: Callable[[], datetime] = utc_now,
        login_queue: int | None = None,
    ) -> None:
        if app.app_id is None:
            raise ValueError("an App Directory app needs app_id")
        self.name = name
        self.app = app
        self.app_id = app.app_id
        self._session = session
        self._pool = pool
        self._cipher = cipher
        self._now = now
        self._limiter = make_limiter(app.rate_limit)
        self.base_url = str(app.base_url or DEFAULT_BASE_URL).rstrip("/")
        self._timeout = app.timeout.total_seconds()
        # Anyone can send a login code, and each costs a call made with the app's secret:
        # past what the rate limit clears in a few seconds, fail fast instead of queueing.
        self.login_queue = login_queue or max(
            4, int(app.rate_limit.per_second * LOGIN_QUEUE_SECONDS)
        )
        self.logins_pending = 0

    def install_id(self, install: str) -> str:
        return f"sendpulse:{self.app_id}:{install}"

    async def login(self, code: str) -> str:
        """Exchange a login code; store the install; return its connection id."""
        reply = await send(
            self._session,
            self._limiter,
            "POST",
            self.base_url + AUTHORIZE_PATH,
            request_timeout=self._timeout,
            json={
                "app_id": self.app_id,
                "secret": self.app.secret.get_secret_value(),
                "code": code,
            },
        )
        if reply.status in (400, 401, 403, 404, 422):
            body = _lenient(reply.body)
            error = body.get("error") if isinstance(body, dict) else None
            if error == "invalid_client":
                log.error("app_directory_app_refused", app=self.name)
                raise InstallRefused("SendPulse refused this app's app_id/secret")
            raise InstallRefused("the login code is invalid, expired or already used")
        if not 200 <= reply.status < 300:
            raise RetriableError(f"SendPulse answered {reply.status} to the code exchange")
        data = _install_data(decode_json(reply.body))
        if str(data.get("app_id", self.app_id)) != self.app_id:
            raise InstallRefused("the install belongs to another app")
        client_id, client_secret = str(data["client_id"]), str(data["client_secret"])
        token = await fetch_client_credentials(
            self._session,
            self._limiter,
            self.base_url + MARKET_TOKEN_PATH,
            client_id=client_id,
            client_secret=client_secret,
            request_timeout=self._timeout,
        )
        account = str(data["user_id"])
        connection_id = install_connection_id(self.name, account)
        credentials = json.dumps({"client_id": client_id, "client_secret": client_secret})
        async with self._pool.acquire() as conn, conn.transaction():
            connection_id = await store_install(
                conn,
                self._cipher,
                connection_id=connection_id,
                provider="sendpulse",
                install_id=self.install_id(str(data["id"])),
                account_id=account,
                scopes=self.app.scopes or None,
                credentials=credentials,
                token=token,
                now=self._now(),
            )
        log.info("app_installed", app=self.name, connection=connection_id, account=account)
        return connection_id

    async def uninstall(self, payload: Any) -> bool:
        """Purge the install if the payload carries its stored keys; False changes nothing.

        Unknown installs, removed ones, wrong keys and keys we cannot read all come back
        False, after the same comparisons, so the answer reveals nothing about which
        install ids exist.
        """
        if not isinstance(payload, Mapping) or "id" not in payload:
            return False
        if str(payload.get("app_id", self.app_id)) != self.app_id:
            return False
        async with self._pool.acquire() as conn:
            row = await app_installs.find(conn, install_id=self.install_id(str(payload["id"])))
            stored = None
            if row is not None and row["status"] != "uninstalled":
                stored = await connections.get(conn, connection_id=row["id"])
        keys = self._stored_keys(stored["credentials"] if stored is not None else None)
        given_id, given_secret = payload.get("client_id"), payload.get("client_secret")
        # Both comparisons always run, against a random value when nothing is stored:
        # a missing or unreadable key must never match, not even an empty one.
        matches = _same(given_id, keys.get("client_id")) & _same(
            given_secret, keys.get("client_secret")
        )
        if not matches or row is None:
            return False
        async with self._pool.acquire() as conn, conn.transaction():
            await purge_install(conn, row["id"])
        return True

    def _stored_keys(self, credentials: bytes | None) -> dict[str, str]:
        if credentials is None:
            return {}
        try:
            keys = json.loads(self._cipher.decrypt(credentials))
        except (UndecryptableSecret, ValueError, TypeError):
            log.error("app_install_keys_unreadable", app=self.name)
            return {}
        if not isinstance(keys, dict):
            return {}
        return {k: v for k, v in keys.items() if isinstance(v, str) and v}

    # -- web handlers -----------------------------------------------------------------------

    def routes(self, prefix: str | None = None) -> list[web.RouteDef]:
        base = prefix or f"/apps/{self.name}"
        return [
            web.get(f"{base}/login", self._login),
            web.post(f"{base}/login", self._login),
            web.post(f"{base}/uninstall", self._uninstall),
        ]

    async def _login(self, request: web.Request) -> web.StreamResponse:
        code = request.query.get("code")
        if code is None and request.method == "POST":
            code = await _posted_code(request)
        if not code or len(code) > 512:
            return page(400, "Install failed", "The request carries no login code.")
        if self.logins_pending >= self.login_queue:
            log.warning("app_login_shed", app=self.name, pending=self.logins_pending)
            busy = page(503, "Busy", "Too many installs at once; try again in a moment.")
            busy.headers["Retry-After"] = "5"
            return busy
        self.logins_pending += 1
        try:
            connection_id = await self.login(code)
        except InstallRefused as exc:
            log.warning("app_install_refused", app=self.name, reason=str(exc))
            return page(400, "Install failed", f"{exc}. Open the app from SendPulse again.")
        except CredentialsRefused:
            log.warning("app_install_refused", app=self.name, reason="market token refused")
            return page(400, "Install failed", "SendPulse refused the install's keys.")
        except (RetriableError, ApiError, ConnectorError) as exc:
            log.warning("app_install_failed", app=self.name, error=str(exc))
            return page(502, "Install failed", "SendPulse did not answer; try again shortly.")
        finally:
            self.logins_pending -= 1
        return page(200, "Connected", f"The app is installed as connection {connection_id}.")

    async def _uninstall(self, request: web.Request) -> web.StreamResponse:
        try:
            payload = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            return web.json_response({"error": "the body is not JSON"}, status=400)
        if not await self.uninstall(payload):
            log.warning("app_uninstall_refused", app=self.name)
            return web.json_response({"error": "unknown install keys"}, status=401)
        return web.json_response({"result": True})


def _same(given: Any, stored: str | None) -> bool:
    """Constant-time equality of a given and a stored key, as UTF-8 bytes (any text)."""
    wanted = stored.encode() if stored else secrets.token_bytes(32)
    offered = given.encode("utf-8", "surrogatepass") if isinstance(given, str) else b""
    return hmac.compare_digest(offered, wanted) and stored is not None


def _install_data(body: Any) -> dict[str, Any]:
    data = body.get("data") if isinstance(body, dict) else None
    if not isinstance(data, dict) or body.get("result") in (False, "false"):
        raise InstallRefused("SendPulse's reply carries no install")
    for key in ("id", "user_id", "client_id", "client_secret"):
        if data.get(key) in (None, ""):
            raise InstallRefused(f"SendPulse's install reply has no {key}")
    return data


async def _posted_code(request: web.Request) -> str | None:
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except (ValueError, UnicodeDecodeError, RecursionError):
            return None
        code = body.get("code") if isinstance(body, dict) else None
    else:
        form = await request.post()
        code = form.get("code")
    return code if isinstance(code, str) else None


def _lenient(raw: bytes) -> Any:
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return None


def app_directory_routes(
    *,
    apps: Mapping[str, App],
    session: aiohttp.ClientSession,
    pool: asyncpg.Pool,
    cipher: Cipher,
    now: Callable[[], datetime] = utc_now,
) -> list[web.RouteDef]:
    """The routes of every app in the flow file's ``apps:``, under ``/apps/<name>/``.

    SendPulse apps get ``login`` (GET/POST) and ``uninstall``; Sendloop/Mailium apps get
    ``install``, ``callback`` and ``uninstall``.
    """
    from connector.auth.mailium_app import MailiumApp

    routes: list[web.RouteDef] = []
    for name, app in apps.items():
        if app.provider == "sendpulse":
            directory = AppDirectory(
                name=name, app=app, session=session, pool=pool, cipher=cipher, now=now
            )
            routes += directory.routes()
        else:
            mailium = MailiumApp(
                name=name, app=app, session=session, pool=pool, cipher=cipher, now=now
            )
            routes += mailium.routes()
    return routes
