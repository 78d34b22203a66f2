"""A reload of a large flow file: parsed and checked off the event loop, phases kept."""

from __future__ import annotations

import asyncio
import socket
import sys
import threading
from pathlib import Path

import aiohttp
import asyncpg
from cryptography.fernet import Fernet
from structlog.testing import capture_logs

from connector.catalog import CATALOG
from connector.config import load_file
from connector.daemon import Runtime, Worker

FLOWS = 1000


def flow_file(flows: int) -> str:
    lines = [
        "connections:",
        "  main: {client_id: a, client_secret: b, base_url: 'http://127.0.0.1:9'}",
        "flows:",
    ]
    for n in range(flows):
        lines += [
            f"  - name: flow-{n:05d}",
            "    trigger:",
            "      type: sendpulse.subscriber_added",
            "      params:",
            f"        mailing_list_id: {n + 1}",
            "    actions:",
            "      - type: log",
        ]
    return "\n".join(lines) + "\n"


def loading_in_another_thread() -> bool:
    """Whether a thread other than this one is inside ``load_file`` right now."""
    here = threading.get_ident()
    for ident, frame in sys._current_frames().items():
        if ident == here:
            continue
        current = frame
        while current is not None:
            if current.f_code is load_file.__code__:
                return True
            current = current.f_back
    return False


async def test_a_reload_reads_the_file_off_the_loop_which_keeps_running(
    db_pool: asyncpg.Pool, tmp_path: Path
) -> None:
    path = tmp_path / "flows.yaml"
    path.write_text(flow_file(FLOWS))
    async with aiohttp.ClientSession() as http:
        rt = Runtime(
            pool=db_pool,
            session=http,
            secret_key=Fernet.generate_key(),
            home=tmp_path,
            worker_id=f"test-{socket.gethostname()}",
        )
        worker = Worker(rt, load_file(path, CATALOG), config_path=str(path), port=None)
        worker.scheduler.sync(worker.config.flows, {f.name for f in worker.config.flows})
        phases_before = {f.name: worker.scheduler.phase(f.name) for f in worker.config.flows}
        path.write_text(flow_file(FLOWS + 1))

        ticks = {"while loading": 0, "in all": 0}
        finished = asyncio.Event()

        async def heartbeat() -> None:
            while not finished.is_set():
                ticks["in all"] += 1
                if loading_in_another_thread():
                    ticks["while loading"] += 1
                await asyncio.sleep(0)

        beating = asyncio.create_task(heartbeat())
        with capture_logs() as logs:
            reloaded = await worker.reload()
        finished.set()
        await beating

    assert reloaded
    # Loaded on the loop, the file would leave the heartbeat no turn while it is read.
    assert ticks["while loading"] >= 10, ticks
    assert worker.scheduler.scheduled == sorted(f"flow-{n:05d}" for n in range(FLOWS + 1))
    new_phase = worker.scheduler.phase(f"flow-{FLOWS:05d}")
    assert new_phase is not None
    moved = max(
        abs((worker.scheduler.phase(name) or 0.0) - (phase or 0.0))
        for name, phase in phases_before.items()
    )
    assert moved < 300 / FLOWS
    spreads = [entry for entry in logs if entry["event"] == "schedule_spread"]
    assert [(s["flows"], s["every"], s["max_polls_per_s"]) for s in spreads] == [
        (FLOWS + 1, "5m", 4)
    ]
