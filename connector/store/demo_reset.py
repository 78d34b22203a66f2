"""What ``connector demo`` forgets at start: its sandbox starts afresh each run, so its flows do."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q


async def forget(
    conn: asyncpg.Connection, *, flow_names: Sequence[str], connection_ids: Sequence[str]
) -> None:
    """Delete the flows' events (their deliveries go with them), snapshots, cursors and poll
    runs, and the connections' tokens (the sandbox issued them to a previous run)."""
    flows, connections = list(flow_names), list(connection_ids)
    for name in ("demo_reset_events", "demo_reset_snapshots", "demo_reset_cursors"):
        await conn.execute(q(name), flows)
    await conn.execute(q("demo_reset_poll_runs"), flows)
    await conn.execute(q("demo_reset_tokens"), connections)
