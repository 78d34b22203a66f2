"""The ``flow_states`` table: each flow's cursor, baseline, account and last error."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q


async def polled_before(conn: asyncpg.Connection, *, flow_names: Sequence[str]) -> set[str]:
    """The flows among ``flow_names`` that have a state, so have polled at least once."""
    rows = await conn.fetch(q("flows_polled_before"), list(flow_names))
    return {row["flow_name"] for row in rows}


async def get(conn: asyncpg.Connection, *, flow_name: str) -> asyncpg.Record | None:
    """The flow's state (cursor as jsonb, state key, baseline, connection); None: never polled."""
    return await conn.fetchrow(q("flow_state_get"), flow_name)
