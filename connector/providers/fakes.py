"""Test helpers for the provider layer: a settable clock, a sleep that only records, and a
flow-file config pointing at a sandbox."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any, Protocol

import aiohttp
import yaml

from connector.catalog import CATALOG
from connector.config import Config, parse


class FakeClock:
    """``now()`` for injection; moves only when told."""

    def __init__(self, start: datetime | None = None) -> None:
        self.current = start or datetime(2026, 1, 10, 12, 0, tzinfo=UTC)

    def now(self) -> datetime:
        return self.current

    def advance(self, seconds: float) -> None:
        self.current += timedelta(seconds=seconds)


class RecordingSleep:
    """An ``asyncio.sleep`` stand-in that records each delay and returns at once."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.delays.append(seconds)


@dataclass
class SentRequest:
    """One request as the client wrote it: when its headers left, and what it carried."""

    method: str
    # As written on the wire: percent-escapes kept.
    path: str
    query: dict[str, str]
    body: bytes = b""
    # Event-loop time at which the headers were written; 0.0 until then.
    at: float = 0.0
    # Requests leave before any answer, so a sent request counts whatever its status.
    status: int = 200
    chunks: list[bytes] = field(default_factory=list, repr=False)

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None


class SendLog:
    """Records, on the client's side, every request a session sends (give it ``trace()``).

    Rate limits are judged by these send times rather than by arrival times at a server in
    the same event loop, which a busy loop can bunch or spread; actions are judged by the
    exact method, path, query and body they send.
    """

    def __init__(self) -> None:
        self.sent: list[SentRequest] = []

    def trace(self) -> aiohttp.TraceConfig:
        trace = aiohttp.TraceConfig()
        trace.on_request_start.append(self._start)
        trace.on_request_chunk_sent.append(self._chunk)
        trace.on_request_headers_sent.append(self._headers_sent)
        trace.on_request_end.append(self._end)
        trace.on_request_exception.append(self._end)
        return trace

    def requests(self, path_prefix: str = "/") -> list[SentRequest]:
        return [r for r in self.sent if r.path.startswith(path_prefix)]

    async def _start(self, _s: Any, ctx: SimpleNamespace, params: Any) -> None:
        url = params.url
        ctx.sent = SentRequest(params.method, url.raw_path, dict(url.query))
        self.sent.append(ctx.sent)

    async def _chunk(self, _s: Any, ctx: SimpleNamespace, params: Any) -> None:
        ctx.sent.chunks.append(bytes(params.chunk))

    async def _headers_sent(self, _s: Any, ctx: SimpleNamespace, _params: Any) -> None:
        ctx.sent.at = asyncio.get_running_loop().time()

    async def _end(self, _s: Any, ctx: SimpleNamespace, _params: Any) -> None:
        ctx.sent.body = b"".join(ctx.sent.chunks)


class _Record(Protocol):
    status: int
    at: float


def max_in_window(records: Iterable[_Record], span: float = 1.0, *, ok_only: bool = True) -> int:
    """The most requests inside any half-open window of ``span`` seconds."""
    times = sorted(r.at for r in records if not ok_only or 200 <= r.status < 300)
    best, start = 0, 0
    for end, at in enumerate(times):
        while times[start] <= at - span:
            start += 1
        best = max(best, end - start + 1)
    return best


def sandbox_config(
    base_url: str,
    client_id: str,
    client_secret: str,
    *,
    name: str = "main",
    extra: Mapping[str, Any] | None = None,
    flows: list[dict[str, Any]] | None = None,
) -> Config:
    """A validated flow file with one sendpulse connection to ``base_url``."""
    document = {
        "connections": {
            name: {
                "provider": "sendpulse",
                "client_id": client_id,
                "client_secret": client_secret,
                "base_url": base_url,
                **(extra or {}),
            }
        },
        "flows": flows or [],
    }
    return parse(flow_yaml(document), CATALOG, "test.yaml")


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data: Any) -> bool:
        return True


def flow_yaml(document: Mapping[str, Any]) -> str:
    """``document`` as YAML with shared objects written out in full: flow files refuse aliases."""
    return yaml.dump(dict(document), Dumper=_NoAliasDumper, sort_keys=True)


async def seed_install_rows(pool: Any, connection_id: str, flow: str) -> None:
    """A cursor, a snapshot row, an event, a pending delivery and a poll run tied to
    ``connection_id``."""
    async with pool.acquire() as conn:
        await conn.execute(
            "INSERT INTO flow_states (flow_name, connection_id, trigger_type, state_key)"
            " VALUES ($1, $2, 'sendpulse.subscriber_added', 'k')",
            flow,
            connection_id,
        )
        await conn.execute(
            "INSERT INTO snapshot_items (flow_name, item_key, fingerprint) VALUES ($1, 'a', 'f')",
            flow,
        )
        await conn.execute(
            "INSERT INTO events (id, flow_name, connection_id, trigger_type, item_key, payload)"
            " VALUES ($1, $2, $3, 'sendpulse.subscriber_added', 'a', '{}')",
            f"ev-{flow}",
            flow,
            connection_id,
        )
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type,"
            " connection_id) VALUES (gen_random_uuid(), $1, $2, 0, 'log', $3)",
            f"ev-{flow}",
            flow,
            connection_id,
        )
        await conn.execute(
            "INSERT INTO poll_runs (flow_name, connection_id, started_at) VALUES ($1, $2, now())",
            flow,
            connection_id,
        )


async def install_row_counts(pool: Any, connection_id: str, flow: str) -> dict[str, int]:
    """How many rows of each kind are still tied to ``connection_id`` (or its flow)."""
    queries = {
        "tokens": "SELECT count(*) FROM tokens WHERE connection_id = $1",
        "cursors": "SELECT count(*) FROM flow_states WHERE connection_id = $1",
        "events": "SELECT count(*) FROM events WHERE connection_id = $1",
        "deliveries": "SELECT count(*) FROM deliveries WHERE connection_id = $1",
        "poll_runs": "SELECT count(*) FROM poll_runs WHERE connection_id = $1",
        "connection": "SELECT count(*) FROM connections WHERE id = $1",
    }
    counts = {name: int(await pool.fetchval(sql, connection_id)) for name, sql in queries.items()}
    counts["snapshots"] = int(
        await pool.fetchval("SELECT count(*) FROM snapshot_items WHERE flow_name = $1", flow)
    )
    return counts
