"""Flow-file load benchmark: a large file through libyaml and through pure-Python PyYAML.

Writes a file of 5,000 flows on 50 connections (``every: 5m``, one ``log`` action each), then
loads it in a fresh child process per loader, three times each, and prints the time to
compose the YAML alone, to load and check the whole file (``config.load_file``, what
``connector check`` and a reload do), and the child's peak RSS above what it held before the
first load. Then the schedule those flows make: polls started in the busiest second and the
mean, with the phases the daemon uses, beside the schedule it used before (first runs within
5 s, then an interval trigger with 10% jitter, capped at 30 s, that carried each jitter on).

    python bench/load.py [--flows 5000] [--connections 50]
"""

from __future__ import annotations

import argparse
import multiprocessing
import random
import resource
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

RUNS = 3
EVERY = timedelta(minutes=5)


def flow_file(flows: int, connections: int) -> str:
    lines = ["connections:"]
    for c in range(connections):
        lines += [
            f"  conn-{c:03d}:",
            f"    client_id: bench-{c:03d}",
            "    client_secret: ${BENCH_SECRET:-bench-secret}",
            "    rate_limit: 3/s",
        ]
    lines.append("flows:")
    for n in range(flows):
        lines += [
            f"  - name: flow-{n:05d}",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            f"      connection: conn-{n % connections:03d}",
            "      params:",
            f"        mailing_list_id: {n + 1}",
            "    every: 5m",
            "    actions:",
            "      - type: log",
        ]
    return "\n".join(lines) + "\n"


def vm_rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


Timing = tuple[float, float]  # (wall seconds, CPU seconds of this process)


def timed(work: Any) -> Timing:
    wall, cpu = time.perf_counter(), time.process_time()
    work()
    return time.perf_counter() - wall, time.process_time() - cpu


def child(pipe: Any, path: str, loader_name: str) -> None:
    """One loader, measured in its own process so its peak RSS is its own."""
    import yaml

    from connector import config, yamlsource
    from connector.catalog import CATALOG

    loader = yaml.SafeLoader if loader_name == "pure" else yaml.CSafeLoader
    yamlsource.FAST_LOADER = loader  # what load() tries first
    text = Path(path).read_text()
    flows = text.count("  - name: ")
    before_kb = vm_rss_kb()
    results: dict[str, list[Timing]] = {"yaml": [], "check": []}
    for _ in range(RUNS):
        # The YAML stage: compose, build values with positions, expand ${VAR}s.
        results["yaml"].append(timed(lambda: yamlsource.load(text, path, {})))
        # What connector check and a reload do: read, load and validate every flow.
        results["check"].append(timed(lambda: config.load_file(path, CATALOG, env={})))
    assert len(config.load_file(path, CATALOG, env={}).flows) == flows
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    pipe.send((results, (peak_kb - before_kb) / 1024))


def measure(path: str, loader_name: str) -> tuple[dict[str, list[Timing]], float]:
    ctx = multiprocessing.get_context("spawn")
    ours, theirs = ctx.Pipe()
    proc = ctx.Process(target=child, args=(theirs, path, loader_name))
    proc.start()
    result: tuple[dict[str, list[Timing]], float] = ours.recv()
    proc.join()
    return result


def best(timings: list[Timing]) -> str:
    wall = min(t[0] for t in timings)
    cpu = min(t[1] for t in timings)
    return f"{wall:.2f} s ({cpu:.2f} s CPU)"


def busiest_second(fire_times: list[float], window: tuple[float, float]) -> tuple[int, float]:
    start, end = window
    seconds = Counter(int(t) for t in fire_times if start <= t < end)
    mean = sum(seconds.values()) / (end - start)
    return max(seconds.values(), default=0), mean


def old_schedule(flows: int, horizon: float) -> list[float]:
    """The schedule before phases: a first run within 5 s, then jitter that accumulates."""
    every = EVERY.total_seconds()
    jitter = min(every * 0.1, 30.0)
    times = []
    for _ in range(flows):
        t = random.uniform(0, 5.0)
        while t < horizon:
            times.append(t)
            t += every + random.uniform(0, jitter)
    return times


def new_schedule(names: list[str], horizon: float) -> list[float]:
    """Fire times from the daemon's own trigger, for flows that polled before (a restart)."""
    from connector.phases import phases
    from connector.scheduler import PhaseTrigger

    table = phases((name, EVERY) for name in names)
    now = datetime.now(UTC)
    times = []
    for name in names:
        trigger = PhaseTrigger(name, EVERY, table)
        fire = trigger.get_next_fire_time(None, now)
        while (fire - now).total_seconds() < horizon:
            times.append((fire - now).total_seconds())
            fire = trigger.get_next_fire_time(fire, fire)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--flows", type=int, default=5000)
    parser.add_argument("--connections", type=int, default=50)
    args = parser.parse_args()

    import yaml

    from connector.phases import spread

    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "flows.yaml"
        path.write_text(flow_file(args.flows, args.connections))
        size = path.stat().st_size
        print(f"{args.flows} flows on {args.connections} connections: {size / 1024:.0f} KiB")
        loaders = ["libyaml", "pure"] if hasattr(yaml, "CSafeLoader") else ["pure"]
        print(f"best of {RUNS}, wall (CPU); peak RSS above the process before loading")
        for name in loaders:
            results, peak_mb = measure(str(path), name)
            print(
                f"  {name:<8} YAML load {best(results['yaml'])}, "
                f"load and check {best(results['check'])}, peak RSS +{peak_mb:.0f} MB"
            )

    names = [f"flow-{n:05d}" for n in range(args.flows)]
    every = EVERY.total_seconds()
    horizon = 4 * every
    # After a (re)start: the first interval, then the fourth one, once jitter has spread.
    print(f"polls started per second, {args.flows} flows every 5m:")
    old = old_schedule(args.flows, horizon)
    new = new_schedule(names, horizon)
    for label, times in (("before", old), ("phases", new)):
        first = busiest_second(times, (0.0, every))
        later = busiest_second(times, (3 * every, 4 * every))
        print(
            f"  {label:<7} first 5 min: busiest second {first[0]:>5}, mean {first[1]:.1f}"
            f" (max/mean {first[0] / first[1]:.2f});"
            f" 4th 5 min: busiest {later[0]:>4} (max/mean {later[0] / later[1]:.2f})"
        )
    print(f"  schedule_spread: {spread((name, EVERY) for name in names).log_fields()}")


if __name__ == "__main__":
    main()
