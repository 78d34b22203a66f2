"""The ``snapshot_items`` table (each flow's last list, as key and fingerprint) and the
session-local tables a long list is diffed through: ``snapshot_incoming``, ``snapshot_delta``."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

from connector.db.queries import q


def _count(status: str) -> int:
    return int(status.split()[-1])


async def open_incoming(conn: asyncpg.Connection) -> None:
    """An empty ``snapshot_incoming`` on this connection (created on first use)."""
    await conn.execute(q("snapshot_incoming_create"))
    await conn.execute(q("snapshot_incoming_truncate"))


async def copy_incoming(
    conn: asyncpg.Connection, *, rows: Sequence[tuple[str, str, str | None]]
) -> None:
    """Append (key, fingerprint, payload as JSON text) rows, in the order given."""
    await conn.copy_records_to_table(
        "snapshot_incoming", records=rows, columns=["item_key", "fingerprint", "payload"]
    )


async def analyze_incoming(conn: asyncpg.Connection) -> None:
    await conn.execute(q("snapshot_incoming_analyze"))


async def drop_incoming(conn: asyncpg.Connection) -> None:
    await conn.execute(q("snapshot_incoming_drop"))


async def first_incoming(
    conn: asyncpg.Connection, *, limit: int, order: str | None
) -> list[asyncpg.Record]:
    """Up to ``limit`` incoming rows as ``added`` delta rows, the newest by ``order``."""
    return list(await conn.fetch(q("snapshot_incoming_read"), limit, order))


async def clear(conn: asyncpg.Connection, *, flow_name: str) -> None:
    """Forget the flow's stored snapshot."""
    await conn.execute(q("snapshot_clear"), flow_name)


async def insert_incoming(conn: asyncpg.Connection, *, flow_name: str) -> int:
    """Store every incoming row as the flow's snapshot; returns how many."""
    return _count(await conn.execute(q("snapshot_insert_all"), flow_name))


async def fill_delta(conn: asyncpg.Connection, *, flow_name: str) -> int:
    """Put into ``snapshot_delta`` what differs between incoming and stored; returns how much."""
    await conn.execute(q("snapshot_delta_create"))
    await conn.execute(q("snapshot_delta_truncate"))
    return _count(await conn.execute(q("snapshot_delta_fill"), flow_name))


async def apply_delta(conn: asyncpg.Connection, *, flow_name: str) -> None:
    """Make the stored snapshot the incoming list, by applying ``snapshot_delta`` to it."""
    await conn.execute(q("snapshot_apply_removed"), flow_name)
    await conn.execute(q("snapshot_apply_added"), flow_name)
    await conn.execute(q("snapshot_apply_changed"), flow_name)


async def delta_page(conn: asyncpg.Connection, *, after: str, limit: int) -> list[asyncpg.Record]:
    """The next ``limit`` delta rows with a key after ``after``, in key order."""
    return list(await conn.fetch(q("snapshot_delta_page"), after, limit))


async def fingerprints(conn: asyncpg.Connection, *, flow_name: str, limit: int) -> dict[str, str]:
    """Up to ``limit`` rows of the flow's stored snapshot, as key -> fingerprint."""
    rows = await conn.fetch(q("snapshot_fingerprints"), flow_name, limit)
    return {row["item_key"]: row["fingerprint"] for row in rows}
