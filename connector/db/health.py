"""Whether this process can reach Postgres, said once per change however many parts notice.

The poller, the ownership loop and the dispatcher each find out about an outage on their
own; one shared :class:`DatabaseHealth` turns that into one ``database_unavailable`` line
when it starts and one ``database_available`` line when it ends.
"""

from __future__ import annotations

from typing import Any

import asyncpg
import structlog

log = structlog.get_logger(__name__)


# What "the database is unreachable or went away" looks like from asyncpg: a refused or dropped
# socket, a server error, a connection closed under us, and InternalClientError for a pooled
# connection left mid-operation by a server restart.
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncpg.InternalClientError)


class DatabaseHealth:
    """One process's view of the database: up until someone fails to reach it."""

    def __init__(self) -> None:
        self.down = False

    def lost(self, exc: BaseException, **context: Any) -> None:
        if not self.down:
            self.down = True
            log.warning("database_unavailable", error=str(exc), **context)

    def back(self, **context: Any) -> None:
        if self.down:
            self.down = False
            log.info("database_available", **context)
