"""App installs as connections: stored with their tokens, and purged on uninstall."""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import structlog

from connector import accounts
from connector.auth.crypto import Cipher
from connector.auth.tokens import IssuedToken
from connector.db.queries import q
from connector.errors import FatalError

log = structlog.get_logger(__name__)


class InstallRefused(FatalError):
    """An install or login could not be completed (bad, reused or expired code or state)."""


def install_connection_id(app: str, account: str) -> str:
    """A readable connection id for one account's install of one app."""
    safe = re.sub(r"[^A-Za-z0-9_-]", "-", account)[:40]
    return f"{app}-{safe}"[:64]


async def store_install(
    conn: asyncpg.Connection,
    cipher: Cipher,
    *,
    connection_id: str,
    provider: str,
    install_id: str,
    account_id: str,
    scopes: Sequence[str] | None,
    credentials: str | None,
    token: IssuedToken | None,
    now: datetime,
) -> None:
    """Upsert the install's connection and (if given) its first token, in the caller's tx."""
    await conn.execute(
        q("install_upsert"),
        connection_id,
        provider,
        install_id,
        account_id,
        list(scopes) if scopes is not None else None,
        cipher.encrypt(credentials) if credentials is not None else None,
    )
    # Installing again (after an uninstall) is a new install id: its flows start over.
    await accounts.record(conn, connection_id, accounts.of_install(install_id))
    await conn.execute(q("token_delete"), connection_id)
    if token is not None:
        await conn.execute(
            q("token_store"),
            connection_id,
            cipher.encrypt(token.access_token),
            cipher.encrypt(token.refresh_token) if token.refresh_token else None,
            now + timedelta(seconds=token.expires_in),
            now,
        )


async def purge_install(conn: asyncpg.Connection, connection_id: str) -> None:
    """Delete everything tied to an install and mark it uninstalled, in the caller's tx."""
    for name in (
        "install_purge_poll_lease",
        "install_purge_snapshots",
        "install_purge_deliveries",
        "install_purge_events",
        "install_purge_cursors",
        "token_delete",
        "install_mark_uninstalled",
    ):
        await conn.execute(q(name), connection_id)
    log.info("app_uninstalled", connection=connection_id)
