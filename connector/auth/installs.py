"""App installs as connections: stored with their tokens, and purged on uninstall."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from datetime import datetime, timedelta

import asyncpg
import structlog

from connector import accounts
from connector.auth.crypto import Cipher
from connector.auth.tokens import IssuedToken
from connector.errors import FatalError
from connector.store import app_installs, tokens_table

log = structlog.get_logger(__name__)

PLAIN_ACCOUNT = re.compile(r"[A-Za-z0-9]{1,40}")


class InstallRefused(FatalError):
    """An install or login could not be completed (bad, reused or expired code or state)."""


def install_connection_id(app: str, account: str) -> str:
    """A readable connection id for one account's install of one app, distinct per account.

    A plain alphanumeric account keeps its name (``store-777``); any other gets a readable
    part and a hash of the exact account, so ``12.3``, ``12-3`` and ``12 3`` stay apart. A
    plain name has no ``-``, so it can never equal a hashed one.
    """
    if PLAIN_ACCOUNT.fullmatch(account):
        return f"{app}-{account}"
    digest = hashlib.sha256(account.encode("utf-8", "surrogatepass")).hexdigest()[:16]
    readable = re.sub(r"[^A-Za-z0-9]+", "-", account).strip("-")[:20] or "account"
    return f"{app}-{readable}-{digest}"


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
) -> str:
    """Upsert the install's connection and (if given) its first token, in the caller's tx.

    Returns the connection id used: an install stored before keeps the id it had. An id
    that already belongs to another account, or to the flow file, is refused.
    """
    existing = await app_installs.find(conn, install_id=install_id)
    if existing is not None:
        connection_id = existing["id"]
    stored = await app_installs.upsert(
        conn,
        connection_id=connection_id,
        provider=provider,
        install_id=install_id,
        account_id=account_id,
        scopes=list(scopes) if scopes is not None else None,
        credentials=cipher.encrypt(credentials) if credentials is not None else None,
    )
    if stored is None:
        log.error("app_install_id_taken", connection=connection_id, account=account_id)
        raise InstallRefused(f"the connection id {connection_id} belongs to another account")
    # Installing again (after an uninstall) is a new install id: its flows start over.
    await accounts.record(conn, connection_id, accounts.of_install(install_id))
    await tokens_table.delete(conn, connection_id=connection_id)
    if token is not None:
        await tokens_table.store(
            conn,
            connection_id=connection_id,
            access_token=cipher.encrypt(token.access_token),
            refresh_token=cipher.encrypt(token.refresh_token) if token.refresh_token else None,
            expires_at=now + timedelta(seconds=token.expires_in),
            refreshed_at=now,
        )
    return str(connection_id)


async def purge_install(conn: asyncpg.Connection, connection_id: str) -> None:
    """Delete everything tied to an install, its connection row last, in the caller's tx.

    The connection's poll lease goes first: deleting its row waits for a poll that is
    committing right now, and a poll still running finds no lease at its commit and
    discards what it fetched (``LeaseLost``), so nothing of the install comes back.
    """
    await app_installs.purge(conn, connection_id=connection_id)
    log.info("app_uninstalled", connection=connection_id)
