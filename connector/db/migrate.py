"""Numbered ``.sql`` migrations, applied in order under an advisory lock.

Two workers starting together must not race: the first takes the lock and migrates, the
second waits, then finds nothing left to do.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from importlib import resources

import asyncpg
import structlog

from connector.errors import ConfigError, StartupFailed
from connector.store import schema_migrations

log = structlog.get_logger(__name__)
_FILE = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


@dataclass(frozen=True)
class MigrationStatus:
    version: int
    name: str
    applied_at: datetime | None


class MigrationMismatch(ConfigError):
    """An applied migration's file changed since: restore it, or add a new migration."""


def available() -> list[Migration]:
    folder = resources.files("connector.db") / "migrations"
    found = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(
                Migration(int(match.group(1)), match.group(2), entry.read_text(encoding="utf-8"))
            )
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ConfigError("two migration files share a version number")
    return found


async def migrate(conn: asyncpg.Connection) -> list[Migration]:
    """Apply every pending migration; return those applied now."""
    applied_now: list[Migration] = []
    await schema_migrations.lock(conn)
    try:
        await schema_migrations.create_table(conn)
        rows = await schema_migrations.applied(conn)
        done = {row["version"]: row["checksum"] for row in rows}
        known = available()
        newer = sorted(set(done) - {m.version for m in known})
        if newer:
            raise StartupFailed(
                "database_newer_than_code",
                f"the database has migration {newer[-1]:04d}, which this version does not know: "
                "it was migrated by a newer connector; run that version, or upgrade this one",
                migrations=[f"{v:04d}" for v in newer],
            )
        for migration in known:
            if migration.version in done:
                if done[migration.version] != migration.checksum:
                    raise MigrationMismatch(
                        f"migration {migration.version:04d}_{migration.name} was changed after "
                        "it was applied; restore it and add a new migration instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(migration.sql)
                await schema_migrations.record(
                    conn,
                    version=migration.version,
                    name=migration.name,
                    checksum=migration.checksum,
                )
            applied_now.append(migration)
            log.info("migration_applied", version=migration.version, name=migration.name)
    finally:
        await schema_migrations.unlock(conn)
    return applied_now


async def status(conn: asyncpg.Connection) -> list[MigrationStatus]:
    """Every known migration with when it was applied (None if pending)."""
    applied = {}
    if await schema_migrations.table_exists(conn):
        rows = await schema_migrations.applied(conn)
        applied = {row["version"]: row["applied_at"] for row in rows}
    return [MigrationStatus(m.version, m.name, applied.get(m.version)) for m in available()]


async def is_current(conn: asyncpg.Connection) -> bool:
    return all(s.applied_at is not None for s in await status(conn))
