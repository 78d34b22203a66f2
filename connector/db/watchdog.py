"""Stops an embedded Postgres whose owner died without stopping it (SIGKILL, OOM kill).

``EmbeddedPostgres.start`` runs this as a detached process: ``python -m
connector.db.watchdog OWNER_PID SERVER_PID DATA_DIR``. It looks once a second; when the owner
is gone it stops the server, as the owner would have on a clean exit. It leaves as soon as the
server is gone, whoever stopped it.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

INTERVAL = 1.0


def _started(pid: int) -> str | None:
    """The process's start time (from /proc), so that a reused pid is not taken for it."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Field 22; the command name (field 2) may hold spaces, so count after its ")".
    return stat.rsplit(")", 1)[-1].split()[19]


def alive(pid: int, started: str | None) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    return started is None or _started(pid) == started


def watch(owner: int, server: int, data_dir: Path, interval: float = INTERVAL) -> bool:
    """Wait until the owner or the server is gone; True if the server was stopped here.

    The server is stopped by its own pid (SIGINT: Postgres' fast shutdown), never through
    the data folder: by the time the owner is seen gone, a clean exit may have stopped this
    server and another process started a new one on the same folder, which is not ours.
    """
    owner_started, server_started = _started(owner), _started(server)
    while alive(server, server_started):
        if not alive(owner, owner_started):
            try:
                if _started(server) != server_started:
                    return False
                os.kill(server, signal.SIGINT)
            except (ProcessLookupError, PermissionError):
                return False
            return True
        time.sleep(interval)
    return False


def main(argv: list[str]) -> int:
    owner, server, data_dir = int(argv[0]), int(argv[1]), Path(argv[2])
    watch(owner, server, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
