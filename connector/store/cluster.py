"""The Postgres cluster itself, below any table: which databases it has, and the statement
that sets the embedded cluster's password."""

from __future__ import annotations

import asyncpg

from connector.db.queries import q


async def database_exists(conn: asyncpg.Connection, *, name: str) -> bool:
    return bool(await conn.fetchval(q("database_exists"), name))


def set_password_statement(*, password: str) -> str:
    """For a single-user backend, where nothing can be bound: ``password`` must be a generated
    url-safe token, never user input."""
    return q("embedded_set_password").replace("{password}", password)
