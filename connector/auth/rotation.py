"""Moving stored secrets onto the newest encryption key.

During a rotation ``CONNECTOR_SECRET_KEY`` is ``new,old``: the first key encrypts, all decrypt.
Rows are re-encrypted under ``new`` as they are read (tokens, install credentials), and
``connector secret rotate`` re-encrypts every row at once. When it reports that nothing is
left under an old key, the old key may go.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field

import asyncpg
import structlog

from connector.auth.crypto import Cipher, UndecryptableSecret
from connector.store import connections, tokens_table

log = structlog.get_logger(__name__)


@dataclass
class Rotation:
    """What one sweep did: rows moved to the newest key, rows no key opens."""

    tokens: int = 0
    credentials: int = 0
    tokens_dropped: list[str] = field(default_factory=list)
    unreadable_credentials: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Nothing readable is left under an old key, and nothing unreadable remains."""
        return not self.unreadable_credentials


def _maybe(cipher: Cipher, value: bytes | None) -> bytes | None:
    return None if value is None else cipher.reencrypt(value)


async def reencrypt_token(conn: asyncpg.Connection, cipher: Cipher, row: asyncpg.Record) -> bool:
    """Re-encrypt one ``tokens`` row if it is under an old key; True if it was rewritten."""
    access, refresh = row["access_token"], row["refresh_token"]
    new_access, new_refresh = _maybe(cipher, access), _maybe(cipher, refresh)
    if new_access is None and new_refresh is None:
        return False
    return await tokens_table.replace(
        conn,
        connection_id=row["connection_id"],
        access_token=new_access if new_access is not None else access,
        refresh_token=new_refresh if new_refresh is not None else refresh,
        replaced_access=access,
        replaced_refresh=refresh,
    )


async def reencrypt_credentials(
    conn: asyncpg.Connection, cipher: Cipher, connection_id: str, credentials: bytes
) -> bool:
    """Re-encrypt one connection's stored credentials if they are under an old key."""
    fresh = cipher.reencrypt(credentials)
    if fresh is None:
        return False
    return await connections.replace_credentials(
        conn, connection_id=connection_id, credentials=fresh, replaced=credentials
    )


async def rotate_all(conn: asyncpg.Connection, cipher: Cipher) -> Rotation:
    """Re-encrypt every stored secret under the newest key."""
    done = Rotation()
    for row in await tokens_table.every_token(conn):
        try:
            if await reencrypt_token(conn, cipher, row):
                done.tokens += 1
        except UndecryptableSecret:
            # Client credentials can always mint a new token; keeping this one helps nobody.
            await tokens_table.forget(
                conn, connection_id=row["connection_id"], access_token=row["access_token"]
            )
            done.tokens_dropped.append(row["connection_id"])
    for row in await connections.with_credentials(conn):
        try:
            if await reencrypt_credentials(conn, cipher, row["id"], row["credentials"]):
                done.credentials += 1
        except UndecryptableSecret:
            done.unreadable_credentials.append(row["id"])
    log.info(
        "secrets_rotated",
        tokens=done.tokens,
        credentials=done.credentials,
        tokens_dropped=len(done.tokens_dropped),
        unreadable_credentials=len(done.unreadable_credentials),
    )
    return done


def cmd_rotate() -> int:
    """``connector secret rotate``: exit 0 when nothing is left under an old key."""
    from connector.auth.crypto import load_secret_key
    from connector.db.command_db import with_command_db
    from connector.db.pool import home

    cipher = Cipher(load_secret_key(os.environ, home()))

    async def work(conn: asyncpg.Connection) -> Rotation:
        return await rotate_all(conn, cipher)

    done = asyncio.run(with_command_db(work))
    print(
        f"re-encrypted {done.tokens} token(s) and {done.credentials} stored credential(s) "
        "under the first key"
    )
    for connection in done.tokens_dropped:
        print(f"dropped the token of {connection}: no key opens it; a new one will be fetched")
    if done.unreadable_credentials:
        names = ", ".join(done.unreadable_credentials)
        print(
            f"no configured key opens the stored credentials of: {names}. Put the key they "
            "were written with back in CONNECTOR_SECRET_KEY (after the new one) and run this "
            "again, or install those apps again."
        )
        return 1
    print("nothing is stored under an old key any more: the old key may be removed")
    return 0
