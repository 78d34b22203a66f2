"""A private PostgreSQL cluster started from the machine's own binaries.

Used when ``DATABASE_URL`` is unset (``make run``) and by the test suite for a throwaway
database. The cluster listens on a unix socket only, so it never clashes with a system
Postgres or with another checkout.

Several processes may share one data folder: a file lock serialises the "is it running?
otherwise start it" step, and ``postmaster.pid`` tells a late comer where the running server's
socket is. A process stops the server on exit only if it started it, and a watchdog stops it
when that process dies without doing so (``connector.db.watchdog``).

Other local users are kept out twice: the socket and its folder are private (0700), and the
superuser logs in with a generated password (SCRAM), kept beside the secret key.
"""

from __future__ import annotations

import fcntl
import os
import secrets
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import structlog

from connector.db.cluster_folder import check_private, reachable
from connector.db.server_binaries import Binaries, chown_to_postgres, find_binaries, server_argv
from connector.errors import ConfigError
from connector.logging import register_secret
from connector.store import cluster

log = structlog.get_logger(__name__)

SUPERUSER = "connector"
DATABASE = "connector"
PORT = 5432
# Unix socket paths are capped near 107 bytes by the kernel.
_MAX_SOCKET_PATH = 100
_WATCHDOGS: list[subprocess.Popen[bytes]] = []
_HBA = (
    "# Written by the connector: only the generated password opens the database.\n"
    "local all all scram-sha-256\n"
)


@dataclass
class EmbeddedPostgres:
    """One private cluster under ``root`` (data in ``root/data``, socket in ``root/run``).

    The superuser's password is in ``password_file`` (default ``<root>.password``, beside the
    secret key in ``CONNECTOR_HOME``), readable by this user only.
    """

    root: Path
    started_here: bool = False
    password_file: Path = field(default=Path())
    _password: str | None = field(default=None, repr=False)

    def __post_init__(self) -> None:
        if self.password_file == Path():
            self.password_file = self.root.with_name(f"{self.root.name}.password")

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
        password = self._password or self._read_password()
        auth = f"{SUPERUSER}:{quote(password, safe='')}" if password else SUPERUSER
        return (
            f"postgresql://{auth}@/{quote(database)}?host={quote(str(self.socket_dir))}&port={PORT}"
        )

    def _read_password(self) -> str | None:
        try:
            password = self.password_file.read_text(encoding="ascii").strip()
        except FileNotFoundError:
            return None
        register_secret(password)
        self._password = password or None
        return self._password

    def _new_password(self) -> str:
        self.password_file.parent.mkdir(parents=True, exist_ok=True)
        password = secrets.token_urlsafe(24)
        fd = os.open(self.password_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(password + "\n")
        register_secret(password)
        self._password = password
        return password

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

    def locate(self) -> None:
        """Follow ``root`` to where the cluster really is (the relocated folder, if any)."""
        self.root = reachable(self.root)

    def start(self, timeout: float = 60.0, *, watchdog: bool = True) -> str:
        """Start (or reuse) the cluster; return the DSN of its ``connector`` database.

        The database itself is created by :func:`connector.db.pool.ensure_database`. With
        ``watchdog``, a server started here stops itself once this process is gone.
        """
        binaries = find_binaries()
        self.locate()
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
                if watchdog:
                    self._watch()
                log.info("embedded_postgres_started", root=str(self.root))
            else:
                if self._read_password() is None:
                    raise ConfigError(
                        f"the embedded database runs, but its password file "
                        f"{self.password_file} is gone; run `connector db stop` and try again"
                    )
                log.info("embedded_postgres_reused", root=str(self.root))
        return self.dsn()

    def _init(self, binaries: Binaries) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        chown_to_postgres(self.root)
        self.root.chmod(0o700)
        if (self.data_dir / "PG_VERSION").exists():
            self._secure(binaries)
            return
        password = self._read_password() or self._new_password()
        for folder in (self.data_dir, self.socket_dir):
            folder.mkdir(mode=0o700, parents=True, exist_ok=True)
            chown_to_postgres(folder)
        # initdb runs as postgres, which cannot read our password file: hand it a copy of its
        # own for the moment initdb needs it.
        pwfile = self.root / "initdb.pw"
        fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write(password + "\n")
        chown_to_postgres(pwfile)
        try:
            result = subprocess.run(  # noqa: S603 - argv built from found binaries
                server_argv(
                    [
                        str(binaries.initdb),
                        "-D",
                        str(self.data_dir),
                        "-U",
                        SUPERUSER,
                        f"--pwfile={pwfile}",
                        "--auth=scram-sha-256",
                        "--encoding=UTF8",
                        "--locale=C",
                    ]
                ),
                capture_output=True,
                text=True,
                check=False,
            )
        finally:
            pwfile.unlink(missing_ok=True)
        if result.returncode != 0:
            raise ConfigError(f"initdb failed: {result.stderr.strip() or result.stdout.strip()}")
        self._write_hba()

    def _write_hba(self) -> None:
        hba = self.data_dir / "pg_hba.conf"
        hba.write_text(_HBA)
        chown_to_postgres(hba)
        hba.chmod(0o600)

    def _secure(self, binaries: Binaries) -> None:
        """A stopped cluster made by an earlier version (trust, no password): lock it."""
        hba = self.data_dir / "pg_hba.conf"
        password = self._read_password()
        if password is not None and hba.read_text() == _HBA:
            return
        password = password or self._new_password()
        # Single-user mode needs no login: the password is set before anyone can connect.
        statement = cluster.set_password_statement(password=password)
        result = subprocess.run(  # noqa: S603 - argv built from found binaries
            server_argv([str(binaries.postgres), "--single", "-D", str(self.data_dir), "postgres"]),
            input=statement + "\n",
            capture_output=True,
            text=True,
            check=False,
        )
        if result.returncode != 0:
            raise ConfigError(f"could not set the embedded database password: {result.stderr}")
        self._write_hba()
        log.info("embedded_postgres_secured", root=str(self.root))

    def _start(self, binaries: Binaries, timeout: float) -> None:
        self.socket_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        chown_to_postgres(self.socket_dir)
        self.socket_dir.chmod(0o700)
        self.log_file.touch()
        chown_to_postgres(self.log_file)
        options = (
            f"-c listen_addresses='' -c unix_socket_directories='{self.socket_dir}' "
            f"-c unix_socket_permissions=0700 "
            f"-p {PORT} -c max_connections=200 -c fsync=on"
        )
        result = subprocess.run(  # noqa: S603 - argv built from found binaries
            server_argv(
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

    def _watch(self) -> None:
        """Start a watchdog that stops this server once this process is gone (even by kill -9)."""
        server = self.running_pid()
        if server is None:
            return
        watchdog = subprocess.Popen(  # noqa: S603 - our own interpreter and module, fixed argv
            [
                sys.executable,
                "-m",
                "connector.db.watchdog",
                str(os.getpid()),
                str(server),
                str(self.data_dir),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        # Held for the life of the process: it outlives us on purpose, and a collected
        # Popen of a running child warns.
        _WATCHDOGS.append(watchdog)

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; only call this if this process started it."""
        stop_server(self.data_dir, mode)
        log.info("embedded_postgres_stopped", root=str(self.root))

    def restart(self, timeout: float = 60.0) -> None:
        """Stop and start again (tests use this to prove the daemon survives a restart)."""
        binaries = find_binaries()
        self.stop()
        deadline = time.monotonic() + timeout
        while self.running_pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
        self._start(binaries, timeout)


def stop_server(data_dir: Path, mode: str = "fast") -> None:
    """``pg_ctl stop`` on a cluster's data folder (as ``postgres`` when we are root)."""
    binaries = find_binaries()
    subprocess.run(  # noqa: S603 - argv built from found binaries
        server_argv([str(binaries.pg_ctl), "-D", str(data_dir), "-m", mode, "-w", "stop"]),
        capture_output=True,
        text=True,
        check=False,
    )


def stop_cluster(root: Path) -> bool:
    """Stop the embedded server under ``root`` if it runs; True if it did."""
    server = EmbeddedPostgres(root)
    if root.is_symlink():
        target = root.resolve()
        if not target.exists():
            return False
        check_private(target)
        server.root = target
    if server.running_pid() is None:
        return False
    stop_server(server.data_dir)
    log.info("embedded_postgres_stopped", root=str(server.root))
    return True


def clean_cluster(root: Path) -> list[Path]:
    """Stop the embedded server under ``root`` and delete its cluster; return what went."""
    stop_cluster(root)
    server = EmbeddedPostgres(root)
    removed: list[Path] = []
    if root.is_symlink():
        target = root.resolve()
        if target.exists():
            check_private(target)
            shutil.rmtree(target)
            removed.append(target)
        root.unlink()
        removed.append(root)
    elif root.exists():
        shutil.rmtree(root)
        removed.append(root)
    if server.password_file.exists():
        server.password_file.unlink()
        removed.append(server.password_file)
    return removed
