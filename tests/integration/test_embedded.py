"""The embedded cluster's privacy: other local users are kept out, foreign folders refused."""

from __future__ import annotations

import asyncio
import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest

from connector.db.cluster_folder import ForeignClusterFolder
from connector.db.embedded import EmbeddedPostgres
from tests.conftest import PostgresServer

as_root = pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("runuser") is None, reason="needs root and runuser"
)

PROBE = """
import socket, sys
probe = socket.socket(socket.AF_UNIX)
try:
    probe.connect(sys.argv[1])
except OSError as exc:
    print(type(exc).__name__)
else:
    print("connected")
"""


def _embedded(server: PostgresServer) -> EmbeddedPostgres:
    if server.embedded is None:
        pytest.skip("TEST_DATABASE_URL points at a server that is not ours")
    return server.embedded


@as_root
def test_another_local_user_cannot_reach_the_socket(postgres_server: PostgresServer) -> None:
    embedded = _embedded(postgres_server)
    socket_path = embedded.socket_dir / ".s.PGSQL.5432"
    assert socket_path.is_socket()
    assert embedded.socket_dir.stat().st_mode & 0o777 == 0o700
    assert socket_path.stat().st_mode & 0o777 == 0o700
    probe = subprocess.run(
        ["runuser", "-u", "nobody", "--", "/usr/bin/python3", "-c", PROBE, str(socket_path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert probe.stdout.strip() == "PermissionError", (probe.stdout, probe.stderr)


async def test_the_superuser_needs_the_generated_password(
    postgres_server: PostgresServer,
) -> None:
    embedded = _embedded(postgres_server)
    password = embedded.password_file.read_text().strip()
    assert len(password) >= 24
    assert embedded.password_file.stat().st_mode & 0o777 == 0o600
    without = f"postgresql://connector@/postgres?host={embedded.socket_dir}&port=5432"
    with pytest.raises(asyncpg.InvalidPasswordError):
        await asyncpg.connect(without, password="not-the-password")
    refused = (asyncpg.InvalidPasswordError, asyncpg.ClientConfigurationError)
    with pytest.raises(refused):
        await asyncpg.connect(without)
    conn = await asyncpg.connect(embedded.dsn("postgres"))
    try:
        assert await conn.fetchval("SELECT current_user") == "connector"
    finally:
        await conn.close()


@pytest.fixture
def private_home() -> Iterator[Path]:
    """A CONNECTOR_HOME the postgres user cannot enter (as under /root): clusters relocate."""
    home = Path(tempfile.mkdtemp(prefix="home-"))
    try:
        yield home
    finally:
        link = home / "postgres"
        if link.is_symlink():
            target = link.resolve()
            if target.name.startswith("connector-pg-"):
                shutil.rmtree(target, ignore_errors=True)
        shutil.rmtree(home, ignore_errors=True)


@as_root
def test_a_relocated_cluster_gets_a_fresh_private_folder(private_home: Path) -> None:
    first = EmbeddedPostgres(private_home / "postgres")
    first.locate()
    link = private_home / "postgres"
    assert link.is_symlink() and link.resolve() == first.root
    info = first.root.stat()
    assert first.root.name.startswith("connector-pg-")
    assert info.st_uid == pwd.getpwnam("postgres").pw_uid
    assert info.st_mode & 0o777 == 0o700
    # The name is recorded by the link: a second process finds the same folder.
    second = EmbeddedPostgres(private_home / "postgres")
    second.locate()
    assert second.root == first.root


@as_root
@pytest.mark.parametrize("owner", ["nobody", "postgres"])
def test_a_folder_someone_else_prepared_is_refused(private_home: Path, owner: str) -> None:
    planted = Path(tempfile.mkdtemp(prefix="connector-pg-"))
    try:
        entry = pwd.getpwnam(owner)
        os.chown(planted, entry.pw_uid, entry.pw_gid)
        planted.chmod(0o777)
        (planted / "data").mkdir()
        (private_home / "postgres").symlink_to(planted, target_is_directory=True)
        with pytest.raises(ForeignClusterFolder) as refused:
            EmbeddedPostgres(private_home / "postgres").start()
        assert str(planted) in str(refused.value)
        assert not (planted / "data" / "PG_VERSION").exists()
    finally:
        shutil.rmtree(planted, ignore_errors=True)


WATCHED = """
import sys, time
from pathlib import Path
from connector.db.embedded import EmbeddedPostgres
server = EmbeddedPostgres(Path(sys.argv[1]))
server.start()
print("server", server.running_pid(), flush=True)
time.sleep(600)
"""


def test_a_server_whose_owner_is_killed_stops_itself(tmp_path: Path) -> None:
    base = Path(tempfile.mkdtemp(prefix="wd-"))
    base.chmod(0o711)
    owner = subprocess.Popen(
        [sys.executable, "-c", WATCHED, str(base / "pg")],
        stdout=subprocess.PIPE,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    try:
        assert owner.stdout is not None
        line = ""
        while not line.startswith("server "):
            line = owner.stdout.readline()
            assert line, "the owner exited before starting its server"
        server_pid = int(line.split()[1])
        os.kill(server_pid, 0)
        owner.send_signal(signal.SIGKILL)
        owner.wait(10)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                os.kill(server_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.2)
        else:
            raise AssertionError("the orphaned server still runs a minute after its owner died")
        assert not (base / "pg" / "data" / "postmaster.pid").exists()
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait(10)
        if owner.stdout is not None:
            owner.stdout.close()
        shutil.rmtree(base, ignore_errors=True)


async def _connects(dsn: str) -> bool:
    try:
        conn = await asyncpg.connect(dsn)
    except (asyncpg.InvalidPasswordError, asyncpg.ClientConfigurationError):
        return False
    await conn.close()
    return True


def test_a_cluster_left_open_by_an_earlier_version_is_locked_on_start() -> None:
    base = Path(tempfile.mkdtemp(prefix="old-"))
    base.chmod(0o711)
    server = EmbeddedPostgres(base / "pg")
    try:
        server.start(watchdog=False)
        server.stop()
        # As earlier versions left it: trust for everyone on the socket, no password file.
        (server.data_dir / "pg_hba.conf").write_text("local all all trust\n")
        server.password_file.unlink()
        again = EmbeddedPostgres(base / "pg")
        again.start(watchdog=False)
        assert again.password_file.exists()
        assert "trust" not in (again.data_dir / "pg_hba.conf").read_text()
        assert asyncio.run(_connects(again.dsn("postgres")))
        bare = f"postgresql://connector@/postgres?host={again.socket_dir}&port=5432"
        assert not asyncio.run(_connects(bare))
    finally:
        server.stop(mode="immediate")
        shutil.rmtree(base, ignore_errors=True)
