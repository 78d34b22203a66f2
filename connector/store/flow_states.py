"""The ``flow_states`` table: each flow's cursor, baseline, account and last error."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q


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
