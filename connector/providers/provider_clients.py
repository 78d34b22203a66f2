"""The provider clients of a process: one limiter and one token manager per connection."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import datetime
from typing import Any

import aiohttp
import asyncpg
import structlog
from aiolimiter import AsyncLimiter

import connector.config
from connector import accounts
from connector.auth.client_credentials import (
    ACCOUNT_TOKEN_PATH,
    MARKET_TOKEN_PATH,
    fetch_client_credentials,
)
from connector.auth.crypto import Cipher, UndecryptableSecret
from connector.auth.rotation import reencrypt_credentials
from connector.auth.tokens import (
    Authorizer,
    CredentialsRefused,
    IssuedToken,
    StaticKey,
    TokenManager,
)
from connector.errors import FatalError
from connector.http_client.api_retry import RetryPolicy, Sleep
from connector.http_client.transport import make_limiter
from connector.providers.sendpulse_client import SendPulseClient
from connector.store import app_installs, connections, tokens_table
from connector.units import RateLimit
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

DEFAULT_RATE = RateLimit(max_rate=3, period=1)


class UnknownConnection(FatalError):
    """No flow-file connection and no installed app has this id."""


class ProviderClients:
    """Builds and caches the clients of every connection; shared by the whole process."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        pool: asyncpg.Pool,
        config: connector.config.Config,
        secret_key: bytes,
        worker_id: str = "local",
        now: Callable[[], datetime] = utc_now,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
        install_base_url: str = connector.config.DEFAULT_BASE_URL,
        install_rate: RateLimit = DEFAULT_RATE,
        install_timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._pool = pool
        self._config = config
        self._cipher = Cipher(secret_key)
        self.worker_id = worker_id
        self._now = now
        self._retry = retry
        self._sleep = sleep
        self._install_base_url = install_base_url.rstrip("/")
        self._install_rate = install_rate
        self._install_timeout = install_timeout
        self._clients: dict[str, SendPulseClient] = {}
        self.limiters: dict[str, AsyncLimiter] = {}
        self.auth: dict[str, Authorizer] = {}

    def use_config(self, config: connector.config.Config) -> None:
        """Take a reloaded flow file; a connection whose settings changed gets a new client.

        Unchanged connections keep their client, limiter and token: a reload must not open a
        second limiter on an account while polls on the first are still running.
        """
        for name in list(self._clients):
            old = self._config.connections.get(name)
            new = config.connections.get(name)
            if old != new:
                self._clients.pop(name, None)
                self.limiters.pop(name, None)
                self.auth.pop(name, None)
        self._config = config

    @property
    def cipher(self) -> Cipher:
        return self._cipher

    def sendpulse(self, connection_id: str) -> SendPulseClient:
        """The client of ``connection_id`` (a flow-file connection or an app install)."""
        client = self._clients.get(connection_id)
        if client is not None:
            return client
        connection = self._config.connections.get(connection_id)
        if connection is not None:
            if connection.provider != "sendpulse":
                raise UnknownConnection(f"connection {connection_id!r} is not a sendpulse one")
            base_url = str(connection.base_url).rstrip("/")
            rate, timeout = connection.rate_limit, connection.timeout.total_seconds()
        else:
            base_url, rate, timeout = self._install_settings(connection_id)
        limiter = self.limiters.setdefault(connection_id, make_limiter(rate))
        auth = self._authorizer(connection_id, connection, base_url, limiter, timeout)
        self.auth[connection_id] = auth
        client = SendPulseClient(
            connection_id=connection_id,
            session=self._session,
            base_url=base_url,
            limiter=limiter,
            auth=auth,
            timeout=timeout,
            retry=self._retry,
            sleep=self._sleep,
        )
        self._clients[connection_id] = client
        return client

    def _install_settings(self, connection_id: str) -> tuple[str, RateLimit, float]:
        # Installs are named "<app>-<account>": the app's settings apply to them.
        for name, app in sorted(self._config.apps.items(), key=lambda item: -len(item[0])):
            if app.provider == "sendpulse" and connection_id.startswith(f"{name}-"):
                base = str(app.base_url or self._install_base_url).rstrip("/")
                return base, app.rate_limit, app.timeout.total_seconds()
        return self._install_base_url, self._install_rate, self._install_timeout

    def _authorizer(
        self,
        connection_id: str,
        connection: connector.config.Connection | None,
        base_url: str,
        limiter: AsyncLimiter,
        timeout: float,
    ) -> Authorizer:
        if connection is not None and connection.client_id is None and connection.api_key:
            return StaticKey(
                connection_id=connection_id,
                provider="sendpulse",
                key=connection.api_key.get_secret_value(),
                pool=self._pool,
            )

        async def fetch(_refresh_token: str | None) -> IssuedToken:
            if connection is not None:
                if connection.client_id is None or connection.client_secret is None:
                    raise CredentialsRefused("the connection has no client_id/client_secret")
                client_id = connection.client_id
                secret = connection.client_secret.get_secret_value()
                path = ACCOUNT_TOKEN_PATH
            else:
                client_id, secret = await self._install_credentials(connection_id)
                path = MARKET_TOKEN_PATH
            return await fetch_client_credentials(
                self._session,
                limiter,
                base_url + path,
                client_id=client_id,
                client_secret=secret,
                request_timeout=timeout,
            )

        return TokenManager(
            connection_id=connection_id,
            provider="sendpulse",
            pool=self._pool,
            cipher=self._cipher,
            fetch=fetch,
            now=self._now,
        )

    async def _install_credentials(self, connection_id: str) -> tuple[str, str]:
        async with self._pool.acquire() as conn:
            row = await connections.get(conn, connection_id=connection_id)
            if row is None or row["credentials"] is None:
                raise UnknownConnection(
                    f"connection {connection_id!r} is neither in the flow file nor an app install"
                )
            try:
                stored = json.loads(self._cipher.decrypt(row["credentials"]))
                client = str(stored["client_id"]), str(stored["client_secret"])
            except (UndecryptableSecret, ValueError, KeyError) as exc:
                raise CredentialsRefused(f"stored credentials are unreadable: {exc}") from exc
            # Read under an old key: store them under the newest one.
            await reencrypt_credentials(conn, self._cipher, connection_id, row["credentials"])
        return client

    def credentials_blob(self, connection: connector.config.Connection) -> dict[str, Any]:
        blob: dict[str, Any] = {}
        if connection.client_id is not None:
            blob["client_id"] = connection.client_id
        if connection.client_secret is not None:
            blob["client_secret"] = connection.client_secret.get_secret_value()
        if connection.api_key is not None:
            blob["api_key"] = connection.api_key.get_secret_value()
        return blob

    async def installs(self, app: str) -> list[str]:
        """The active installs of an ``apps:`` entry: connection ids a flow may run for."""
        async with self._pool.acquire() as conn:
            return await app_installs.active(conn, app=app)

    async def ensure_connections(self) -> list[str]:
        """Upsert a row per flow-file connection; changed credentials clear ``needs_reauth``.

        Each row also takes the fingerprint of the account its settings reach now; a change
        is logged (``connection_account_changed``) and its flows start new baselines. Returns
        the connections whose account this call changed.
        """
        moved_to_another: list[str] = []
        async with self._pool.acquire() as conn:
            for name, connection in self._config.connections.items():
                blob = self.credentials_blob(connection)
                row = await connections.get(conn, connection_id=name)
                changed = True
                if row is not None and row["credentials"] is not None:
                    try:
                        changed = json.loads(self._cipher.decrypt(row["credentials"])) != blob
                    except (UndecryptableSecret, ValueError):
                        changed = True
                async with conn.transaction():
                    await connections.upsert_config(
                        conn,
                        connection_id=name,
                        provider=connection.provider,
                        scopes=connection.scopes,
                        credentials=self._cipher.encrypt(json.dumps(blob, sort_keys=True)),
                        reactivate=changed,
                    )
                    moved = await accounts.record(conn, name, accounts.of_connection(connection))
                    # A token of the account left behind must not be sent to the new one.
                    if (changed or moved is not None) and row is not None:
                        await tokens_table.delete(conn, connection_id=name)
                if moved is not None:
                    moved_to_another.append(name)
                if changed and row is not None:
                    log.info("connection_credentials_changed", connection=name)
        return moved_to_another
