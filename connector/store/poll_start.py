"""The statement that starts a poll, across ``leases``, ``flow_states`` and ``connections``.

One round trip where there were three (the connection's status, the poll lease, the flow's
state): a quiet poll is mostly round trips, and each costs Postgres more around it than the
statement itself. See ``poll_start`` in ``engine_queries.sql``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from connector.db.queries import q

_STATE = (
    "connection_id",
    "trigger_type",
    "state_key",
    "cursor",
    "baseline_done",
    "last_error",
    "account_fingerprint",
)


@dataclass(frozen=True)
class PollStart:
    """What a poll starts from."""

    # Whether this statement took (or extended) the lease.
    taken: bool
    # Who held the lease as the statement began (None: nobody).
    holder: str | None
    # The connection's status and account fingerprint (None: no row, or no connection).
    connection_status: str | None
    connection_account: str | None
    # The flow's state row (its cursor as the driver returns jsonb); None: never polled.
    state: Mapping[str, Any] | None


async def begin(
    conn: asyncpg.Connection,
    *,
    resource: str,
    owner: str,
    now: datetime,
    expires_at: datetime,
    flow_name: str,
    connection_id: str | None,
    take: bool,
) -> PollStart:
    """Take the poll lease (if ``take``, and unless the connection is ``needs_reauth``) and
    read the flow's state and the connection's status, in one statement."""
    row = await conn.fetchrow(
        q("poll_start"), resource, owner, now, expires_at, flow_name, connection_id, take
    )
    return PollStart(
        taken=row["taken"],
        holder=row["holder"],
        connection_status=row["connection_status"],
        connection_account=row["connection_account"],
        state={name: row[name] for name in _STATE} if row["has_state"] else None,
    )
