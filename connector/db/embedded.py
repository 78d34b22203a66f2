"""A private PostgreSQL cluster started from the machine's own binaries.

Used when ``DATABASE_URL`` is unset (``make run``) and by the test suite for a throwaway
database. The cluster listens on a unix socket only, so it never clashes with a system
Postgres or with another checkout.

Several processes may share one data folder: a file lock serialises the "is it running?
otherwise start it" step, and ``postmaster.pid`` tells a late comer where the running server's
socket is. A process stops the server on exit only if it started it.
"""

from __future__ import annotations

import fcntl
import grp
import hashlib
import os
import pwd
import shutil
import stat
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import structlog

from connector.errors import ConfigError

log = structlog.get_logger(__name__)

SUPERUSER = "connector"
DATABASE = "connector"
PORT = 5432
# Unix socket paths are capped near 107 bytes by the kernel.
_MAX_SOCKET_PATH = 100


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


def _run_as_postgres() -> bool:
    """Postgres refuses to run as root; then every server command runs as ``postgres``."""
    return os.geteuid() == 0


def _argv(argv: list[str]) -> list[str]:
    if _run_as_postgres():
        runuser = shutil.which("runuser")
        if runuser:
            return [runuser, "-u", "postgres", "--", *argv]
        return ["su", "postgres", "-s", "/bin/sh", "-c", " ".join(argv)]
    return argv


def _chown_to_postgres(path: Path) -> None:
    if not _run_as_postgres():
        return
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError as exc:
        raise PostgresNotFound(
            "running as root, but there is no 'postgres' user to run the server as; "
            "create one (useradd postgres) or run as an ordinary user"
        ) from exc
    os.chown(path, entry.pw_uid, entry.pw_gid)


def _postgres_can_enter(path: Path) -> bool:
    """Whether the ``postgres`` user may traverse every existing folder above ``path``."""
    try:
        entry = pwd.getpwnam("postgres")
    except KeyError:
        return True
    groups = {entry.pw_gid} | {g.gr_gid for g in grp.getgrall() if "postgres" in g.gr_mem}
    for folder in [path, *path.parents]:
        if not folder.exists():
            continue
        info = folder.stat()
        if info.st_uid == entry.pw_uid:
            allowed = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            allowed = bool(info.st_mode & stat.S_IXGRP)
        else:
            allowed = bool(info.st_mode & stat.S_IXOTH)
        if not allowed:
            return False
    return True


def _reachable(root: Path) -> Path:
    """``root``, or a stand-in the ``postgres`` user can reach, linked from ``root``.

    As root, the server runs as ``postgres``, which cannot enter a checkout under a private
    folder such as ``/root``. Then the cluster lives in the system temp folder, under a name
    derived from ``root``, and ``root`` becomes a symlink to it so every process finds it.
    """
    if root.is_symlink() or not _run_as_postgres() or _postgres_can_enter(root.parent):
        return root.resolve() if root.is_symlink() else root
    digest = hashlib.sha256(str(root).encode()).hexdigest()[:16]
    target = Path(tempfile.gettempdir()) / f"connector-pg-{digest}"
    target.mkdir(mode=0o755, exist_ok=True)
    root.parent.mkdir(parents=True, exist_ok=True)
    try:
        root.symlink_to(target, target_is_directory=True)
    except FileExistsError:
        pass
    log.warning(
        "embedded_postgres_relocated",
        reason="the postgres user cannot enter the project folder",
        root=str(target),
    )
    return target


@dataclass
class EmbeddedPostgres:
    """One private cluster under ``root`` (data in ``root/data``, socket in ``root/run``)."""

    root: Path
    started_here: bool = False

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "run"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    def dsn(self, database: str = DATABASE) -> str:
        return (
            f"postgresql://{SUPERUSER}@/{quote(database)}"
            f"?host={quote(str(self.socket_dir))}&port={PORT}"
        )

    @contextmanager
    def _lock(self) -> Iterator[None]:
        self.root.mkdir(parents=True, exist_ok=True)
        with open(self.root / "start.lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def running_pid(self) -> int | None:
        """The pid in ``postmaster.pid`` if that process is alive."""
        pidfile = self.data_dir / "postmaster.pid"
        try:
            pid = int(pidfile.read_text().splitlines()[0])
        except (OSError, ValueError, IndexError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def start(self, timeout: float = 60.0) -> str:
        """Start (or reuse) the cluster; return the DSN of its ``connector`` database.

        The database itself is created by :func:`connector.db.pool.ensure_database`.
        """
        binaries = find_binaries()
        self.root = _reachable(self.root)
        if len(str(self.socket_dir)) + len("/.s.PGSQL.5432") > _MAX_SOCKET_PATH:
            raise ConfigError(
                f"the embedded database folder {self.root} is too deep for a unix socket "
                "path; move the checkout to a shorter path or set DATABASE_URL"
            )
        with self._lock():
            if self.running_pid() is None:
                self._init(binaries)
                self._start(binaries, timeout)
                self.started_here = True
                log.info("embedded_postgres_started", root=str(self.root))
            else:
                log.info("embedded_postgres_reused", root=str(self.root))
        return self.dsn()

    def _init(self, binaries: Binaries) -> None:
        if (self.data_dir / "PG_VERSION").exists():
            return
        for folder in (self.root, self.data_dir, self.socket_dir):
            folder.mkdir(parents=True, exist_ok=True)
            _chown_to_postgres(folder)
        result = subprocess.run(  # noqa: S603 - argv built from found binaries
            _argv(
                [
                    str(binaries.initdb),
                    "-D",
                    str(self.data_dir),
                    "-U",
                    SUPERUSER,
                    "--auth=trust",
                    "--encoding=UTF8",
                    "--locale=C",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")

    def _start(self, binaries: Binaries, timeout: float) -> None:
        self.socket_dir.mkdir(parents=True, exist_ok=True)
        _chown_to_postgres(self.socket_dir)
        self.log_file.touch()
        _chown_to_postgres(self.log_file)
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
            f"-p {PORT} -c max_connections=200 -c fsync=on"
        )
        result = subprocess.run(  # noqa: S603 - argv built from found binaries
            _argv(
                [
                    str(binaries.pg_ctl),
                    "-D",
                    str(self.data_dir),
                    "-l",
                    str(self.log_file),
                    "-o",
                    options,
                    "-w",
                    "-t",
                    str(int(timeout)),
                    "start",
                ]
            ),
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            tail = self.log_file.read_text(errors="replace")[-2000:]
            raise ConfigError(f"could not start the embedded Postgres: {tail.strip()}")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; only call this if this process started it."""
        binaries = find_binaries()
        subprocess.run(  # noqa: S603 - argv built from found binaries
            _argv([str(binaries.pg_ctl), "-D", str(self.data_dir), "-m", mode, "-w", "stop"]),
            capture_output=True,
            text=True,
            check=False,
        )
        log.info("embedded_postgres_stopped", root=str(self.root))

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again (tests use this to prove the daemon survives a restart)."""
        binaries = find_binaries()
        self.stop()
        deadline = time.monotonic() + timeout
        while self.running_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        self._start(binaries, timeout)
