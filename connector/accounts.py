"""Which account a connection reaches: its fingerprint, and the record of when it changed.

A flow's cursor and snapshot describe one account's data. Pointed at another account under
the same connection name (another ``base_url``, ``client_id`` or ``api_key``), they would
hide that account's new items below an old cursor, or announce its existing ones as new.
So each connection has a fingerprint of the account it reaches, stored on its row, and each
flow state the fingerprint it was taken under; the engine starts a new baseline when they
differ (see :mod:`connector.engine`).

The fingerprint holds no secret: a client id is an account's public half, an API key is
hashed. SendPulse's REST API has no call that names the account behind client credentials or
an API key; the one place it tells us is the App Directory install (``user_id``), whose
install id is then the fingerprint. A rotated ``client_secret`` is the same account.
"""

from __future__ import annotations

import hashlib

import asyncpg
import structlog

from connector.config import Connection
from connector.store import connections

log = structlog.get_logger(__name__)


def of_connection(connection: Connection) -> str:
    """The fingerprint of a flow-file connection: provider, base URL and who signs in."""
    base_url = str(connection.base_url).rstrip("/")
    if connection.client_id is not None:
        who = f"client_id:{connection.client_id}"
    elif connection.api_key is not None:
        digest = hashlib.sha256(connection.api_key.get_secret_value().encode("utf-8"))
        who = f"api_key_sha256:{digest.hexdigest()[:16]}"
    else:
        # The config refuses a connection without credentials; this is never reached.
        raise ValueError("a connection without credentials has no account")
    return f"{connection.provider}|{base_url}|{who}"


def of_install(install_id: str) -> str:
    """The fingerprint of an app install: its install id names one account's install."""
    if not install_id:
        raise ValueError("an install without an install id has no account")
    return f"install|{install_id}"


async def record(conn: asyncpg.Connection, connection_id: str, fingerprint: str) -> str | None:
    """Store the connection's fingerprint; return the previous one if this changed it.

    The first fingerprint a connection gets (a new row, or one from before fingerprints were
    kept) is taken as it is: there is nothing to compare it with. Of several workers loading
    the same change, the row lock lets exactly one see it, so it is logged once.
    """
    previous = await connections.record_account(
        conn, connection_id=connection_id, fingerprint=fingerprint
    )
    if previous is not None:
        log.warning(
            "connection_account_changed",
            connection=connection_id,
            old_fingerprint=previous,
            new_fingerprint=fingerprint,
        )
    return previous
