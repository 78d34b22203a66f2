"""The statements Postgres ran for one stretch of a benchmark (``pg_stat_statements``).

Only on a server started with ``shared_preload_libraries = 'pg_stat_statements'`` (given as
``DATABASE_URL``); elsewhere the helpers say so and the benchmark carries on without.
"""

from __future__ import annotations

from typing import Any

import asyncpg

q_reset = "SELECT pg_stat_statements_reset()"
q_top = """
SELECT calls, total_exec_time, rows, query
FROM pg_stat_statements
WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
  AND query NOT LIKE '%pg_stat_statements%'
ORDER BY total_exec_time DESC
LIMIT $1
"""


async def enable(pool: Any) -> bool:
    """Create the extension in this database; False when the server did not preload it."""
    try:
        await pool.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        await pool.execute(q_reset)
    except asyncpg.PostgresError:
        # Not installed, or not preloaded (the reset then says so).
        return False
    return True


async def reset(pool: Any) -> None:
    await pool.execute(q_reset)


async def top(pool: Any, units: int, limit: int = 15) -> list[str]:
    """The heaviest statements since the reset, with calls and time per unit of work."""
    lines = []
    for row in await pool.fetch(q_top, limit):
        text = " ".join(row["query"].split())[:110]
        lines.append(
            f"{row['calls'] / units:6.2f} calls/unit  {row['total_exec_time'] / units:7.3f} ms/unit"
            f"  {row['total_exec_time'] / max(1, row['calls']):7.3f} ms/call  {text}"
        )
    return lines
