"""Access tokens per connection: fetched once, shared, refreshed before they run out.

Single-flight twice over: in a process, a lock and a second look after taking it; across
processes, a Postgres advisory lock on the connection, then a re-read of the stored token, so
fifty callers in three workers cause one token request. Tokens are stored encrypted.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol

import asyncpg
import structlog

from connector import metrics
from connector.auth.crypto import Cipher, UndecryptableSecret
from connector.auth.rotation import reencrypt_token
from connector.errors import NeedsReauth
from connector.store import connections, tokens_table

log = structlog.get_logger(__name__)

REFRESH_MARGIN = timedelta(minutes=5)


@dataclass(frozen=True)
class IssuedToken:
    """What a token endpoint handed out."""

    access_token: str
    expires_in: float
    refresh_token: str | None = None


class CredentialsRefused(NeedsReauth):
    """The token endpoint refused the credentials themselves (``invalid_client``)."""


Fetcher = Callable[[str | None], Awaitable[IssuedToken]]


class Authorizer(Protocol):
    """What a client needs from its auth: a bearer value, and what to do on a 401."""

    async def bearer(self) -> str: ...

    async def after_unauthorized(self, refused: str) -> str: ...

    async def give_up(self, reason: str) -> NeedsReauth: ...


@dataclass
class _Cached:
    value: str
    expires_at: datetime


async def mark_needs_reauth(
    pool: asyncpg.Pool, connection_id: str, reason: str, *, provider: str
) -> bool:
    """Flag the connection; log ``connection_auth_failed`` only for the caller that flipped it."""
    async with pool.acquire() as conn:
        await connections.ensure(conn, connection_id=connection_id, provider=provider)
        flipped = await connections.mark_needs_reauth(
            conn, connection_id=connection_id, reason=reason
        )
    if flipped:
        log.error("connection_auth_failed", connection=connection_id, reason=reason)
    return flipped


class TokenManager:
    """The token of one connection, shared by every caller in the process."""

    def __init__(
        self,
        *,
        connection_id: str,
        provider: str,
        pool: asyncpg.Pool,
        cipher: Cipher,
        fetch: Fetcher,
        now: Callable[[], datetime],
        margin: timedelta = REFRESH_MARGIN,
    ) -> None:
        self.connection_id = connection_id
        self.provider = provider
        self._pool = pool
        self._cipher = cipher
        self._fetch = fetch
        self._now = now
        self._margin = margin
        self._lock = asyncio.Lock()
        self._cached: _Cached | None = None
        self._dead: str | None = None
        self.fetches = 0

    def _fresh(self, expires_at: datetime) -> bool:
        return expires_at - self._now() > self._margin

    async def bearer(self) -> str:
        """A token with more than the margin left, fetching or refreshing it if needed."""
        if self._dead is not None:
            raise NeedsReauth(f"connection {self.connection_id} needs re-authorisation")
        cached = self._cached
        if cached is not None and self._fresh(cached.expires_at):
            return cached.value
        async with self._lock:
            cached = self._cached  # second look: another caller may have refreshed
            if cached is not None and self._fresh(cached.expires_at):
                return cached.value
            return await self._refresh(refused=None)

    async def after_unauthorized(self, refused: str) -> str:
        """The API refused ``refused``: get a different token (once), or give up."""
        async with self._lock:
            cached = self._cached
            if cached is not None and cached.value != refused and self._fresh(cached.expires_at):
                return cached.value
            self._cached = None
            return await self._refresh(refused=refused)

    async def give_up(self, reason: str) -> NeedsReauth:
        """Mark the connection ``needs_reauth``; return the error for the caller to raise."""
        self._dead = reason
        self._cached = None
        await mark_needs_reauth(self._pool, self.connection_id, reason, provider=self.provider)
        return NeedsReauth(f"connection {self.connection_id} needs re-authorisation: {reason}")

    def _open(self, stored: bytes | None) -> str | None:
        """A stored token in clear; None if there is none or no configured key opens it.

        A token under a key since removed is no loss: a new one is fetched in its place.
        """
        if stored is None:
            return None
        try:
            return self._cipher.decrypt(stored)
        except UndecryptableSecret:
            log.warning("token_undecryptable", connection=self.connection_id)
            return None

    async def _refresh(self, refused: str | None) -> str:
        try:
            async with self._pool.acquire() as conn, conn.transaction():
                await connections.ensure(
                    conn, connection_id=self.connection_id, provider=self.provider
                )
                await tokens_table.lock(conn, connection_id=self.connection_id)
                row = await tokens_table.get(conn, connection_id=self.connection_id)
                # The row was ensured above; only an uninstall purging it meanwhile leaves none.
                status = "gone" if row is None else row["status"]
                if row is None or status != "active":
                    self._dead = status
                    raise NeedsReauth(
                        f"connection {self.connection_id} is {status}; re-authorise it"
                    )
                stored = self._open(row["access_token"])
                old_refresh = self._open(row["refresh_token"])
                # Another process may have refreshed while we waited for the lock.
                if stored is not None and stored != refused and self._fresh(row["expires_at"]):
                    if row["refresh_token"] is None or old_refresh is not None:
                        await reencrypt_token(
                            conn, self._cipher, {"connection_id": self.connection_id, **row}
                        )
                    self._cached = _Cached(stored, row["expires_at"])
                    return stored
                self.fetches += 1
                issued = await self._fetch(old_refresh)
                now = self._now()
                expires_at = now + timedelta(seconds=issued.expires_in)
                # Rotating refresh tokens: keep the old one only if no new one came.
                refresh = issued.refresh_token or old_refresh
                version = await tokens_table.store(
                    conn,
                    connection_id=self.connection_id,
                    access_token=self._cipher.encrypt(issued.access_token),
                    refresh_token=self._cipher.encrypt(refresh) if refresh else None,
                    expires_at=expires_at,
                    refreshed_at=now,
                )
        except CredentialsRefused as exc:
            raise await self.give_up(str(exc)) from exc
        self._cached = _Cached(issued.access_token, expires_at)
        metrics.TOKEN_REFRESHES.labels(connection=self.connection_id).inc()
        log.info(
            "token_refreshed",
            connection=self.connection_id,
            expires_at=expires_at.isoformat(),
            version=version,
            forced=refused is not None,
        )
        return issued.access_token


class StaticKey:
    """An API key: no expiry, no refresh; a 401 means the key was revoked."""

    def __init__(self, *, connection_id: str, provider: str, key: str, pool: asyncpg.Pool) -> None:
        self.connection_id = connection_id
        self.provider = provider
        self._key = key
        self._pool = pool
        self._dead: str | None = None

    async def bearer(self) -> str:
        if self._dead is not None:
            raise NeedsReauth(f"connection {self.connection_id} needs a new API key")
        return self._key

    async def after_unauthorized(self, refused: str) -> str:
        raise await self.give_up("the API key was refused")

    async def give_up(self, reason: str) -> NeedsReauth:
        self._dead = reason
        await mark_needs_reauth(self._pool, self.connection_id, reason, provider=self.provider)
        return NeedsReauth(f"connection {self.connection_id} needs a new API key: {reason}")
