"""CPU seconds of an embedded Postgres, for the benchmarks that report Postgres CPU per poll."""

from __future__ import annotations

import os
from pathlib import Path


def postgres_cpu(data_dir: Path) -> float | None:
    """CPU seconds of the postmaster, its live children and the children it has reaped.

    Backends come and go during a run: a backend that exited took its CPU time with it,
    unless the postmaster's own count of its reaped children (cutime, cstime) is added, and
    a sum over the live processes alone can then fall between two readings.
    """
    pid_file = data_dir / "postmaster.pid"
    if not pid_file.exists():
        return None
    root = int(pid_file.read_text().split()[0])
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parts = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        pid = int(stat.parent.name)
        if pid == root:
            # utime, stime, cutime, cstime (fields 14-17 of /proc/PID/stat).
            total += sum(int(value) for value in parts[11:15]) / tick
        elif int(parts[1]) == root:
            total += (int(parts[11]) + int(parts[12])) / tick
    return total
