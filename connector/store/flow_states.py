"""The ``flow_states`` table: each flow's cursor, baseline, account and last error."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import asyncpg

from connector.db.queries import q


async def get(conn: asyncpg.Connection, *, flow_name: str) -> asyncpg.Record | None:
    """flow_name, connection_id, trigger_type, state_key, cursor (decoded by the pool's
    codec), baseline_done, last_error and account_fingerprint; None for a flow never polled."""
    return await conn.fetchrow(q("flow_state_get"), flow_name)


async def save(
    conn: asyncpg.Connection,
    *,
    flow_name: str,
    connection_id: str | None,
    trigger_type: str,
    state_key: str,
    cursor: Any,
    baseline_done: bool,
    last_error: str | None,
    account_fingerprint: str | None,
) -> None:
    """Write the flow's whole state (``cursor`` as the JSON value it is)."""
    await conn.execute(
        q("flow_state_save"),
        flow_name,
        connection_id,
        trigger_type,
        state_key,
        cursor,
        baseline_done,
        last_error,
        account_fingerprint,
    )


async def set_error(
    conn: asyncpg.Connection,
    *,
    flow_name: str,
    connection_id: str | None,
    trigger_type: str,
    state_key: str,
    error: str,
) -> None:
    """Record a failed poll: only the error moves (a new flow gets a row without a cursor)."""
    await conn.execute(
        q("flow_state_set_error"), flow_name, connection_id, trigger_type, state_key, error
    )


async def polled_before(conn: asyncpg.Connection, *, flow_names: Sequence[str]) -> set[str]:
    """The flows among ``flow_names`` that have a state, so have polled at least once."""
    rows = await conn.fetch(q("flows_polled_before"), list(flow_names))
    return {row["flow_name"] for row in rows}


async def baseline(conn: asyncpg.Connection, *, flow_name: str) -> asyncpg.Record | None:
    """What the flow's baseline was taken of: state_key, baseline_done, connection_id and
    account_fingerprint (None: the flow never polled)."""
    return await conn.fetchrow(q("flow_baseline"), flow_name)


async def forget_digest(conn: asyncpg.Connection, *, flow_name: str) -> None:
    """Drop the list digest from the flow's cursor: its snapshot moved outside a poll."""
    await conn.execute(q("flow_state_forget_digest"), flow_name)
