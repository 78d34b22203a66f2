"""The PostgreSQL server binaries of this machine, and running them as the ``postgres`` user
when the connector runs as root (the server refuses to run as root)."""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from connector.errors import ConfigError


class PostgresNotFound(ConfigError):
    """No PostgreSQL server binaries on this machine: install them or set DATABASE_URL."""


@dataclass(frozen=True)
class Binaries:
    initdb: Path
    pg_ctl: Path
    postgres: Path


def find_binaries() -> Binaries:
    """Find initdb/pg_ctl/postgres on PATH, else through ``pg_config --bindir``."""
    found: dict[str, Path] = {}
    for name in ("initdb", "pg_ctl", "postgres"):
        where = shutil.which(name)
        if where:
            found[name] = Path(where)
    if len(found) < 3:
        pg_config = shutil.which("pg_config")
        if pg_config:
            bindir = subprocess.run(  # noqa: S603 - fixed argv, no shell
                [pg_config, "--bindir"], capture_output=True, text=True, check=False
            ).stdout.strip()
            for name in ("initdb", "pg_ctl", "postgres"):
                candidate = Path(bindir) / name
                if name not in found and candidate.exists():
                    found[name] = candidate
    missing = [n for n in ("initdb", "pg_ctl", "postgres") if n not in found]
    if missing:
        raise PostgresNotFound(
            f"PostgreSQL server binaries not found ({', '.join(missing)} missing from PATH "
            "and pg_config --bindir). Install PostgreSQL 13 or newer (Debian/Ubuntu: "
            "apt-get install postgresql; macOS: brew install postgresql), or set "
            "DATABASE_URL to an existing database."
        )
    return Binaries(found["initdb"], found["pg_ctl"], found["postgres"])


def runs_as_postgres() -> bool:
    """Postgres refuses to run as root; then every server command runs as ``postgres``."""
    return os.geteuid() == 0


def server_argv(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root, as it is otherwise."""
    if runs_as_postgres():
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *argv]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(argv)]
    return argv


def chown_to_postgres(path: Path) -> None:
    if not runs_as_postgres():
        return
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresNotFound(
            "running as root, but there is no 'postgres' user to run the server as; "
            "create one (useradd postgres) or run as an ordinary user"
        ) from exc
    os.chown(path, entry.pw_uid, entry.pw_gid)
