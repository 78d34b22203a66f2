"""Helpers for dispatch tests: a flow file, events and deliveries in plain SQL, a fake
clock, and a local webhook receiver that records what reaches it."""

from __future__ import annotations

import json
import textwrap
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
from aiohttp import web

from connector.catalog import CATALOG
from connector.config import Config, parse
from connector.plugins import Action, Catalog, Registry

NAMESPACE = uuid.UUID("0d4f5b8e-2c1a-4e57-9b3d-6a7c8e9f0a1b")
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start: datetime = T0) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta | float) -> None:
        self.now += delta if isinstance(delta, timedelta) else timedelta(seconds=delta)


def flow_file(
    flows: str, *, allow: Sequence[str] = ("127.0.0.1/32",), catalog: Catalog = CATALOG
) -> Config:
    """A config with one SendPulse connection, the given flows, and loopback allowed."""
    networks = "".join(f"\n    - {n}" for n in allow) or " []"
    text = (
        "connections:\n"
        "  main:\n"
        "    client_id: id\n"
        "    client_secret: secret-value\n"
        f"egress:\n  allow_networks:{networks}\n"
        "flows:\n" + textwrap.indent(textwrap.dedent(flows), "  ")
    )
    return parse(text, catalog, "flows.yaml", env={})


def standing_in(*actions: type[Action[Any]]) -> Catalog:
    """The shipped catalogue with ``actions`` in place of the shipped ones of their keys."""
    keys = {action.key for action in actions}
    kept = [action for action in CATALOG.actions if action.key not in keys]
    return Catalog(CATALOG.triggers, Registry("action", [*kept, *actions]))


def webhook_flow(name: str, url: str, **extra: Any) -> str:
    options = "".join(f"  {k}: {json.dumps(v)}\n" for k, v in extra.items())
    return (
        f"- name: {name}\n"
        "  trigger: {type: sendpulse.subscriber_added, params: {mailing_list_id: 1}}\n"
        f"{options}"
        "  actions:\n"
        f"    - type: webhook\n      url: {url}\n      secret: {SECRET}\n"
    )


def delivery_id(event_id: str, index: int) -> uuid.UUID:
    return uuid.uuid5(NAMESPACE, f"{event_id}:{index}")


async def insert_event(
    conn: asyncpg.Connection,
    flow: str,
    event_id: str,
    payload: dict[str, Any],
    *,
    actions: Sequence[str] = ("webhook",),
    at: datetime = T0,
    item_key: str | None = None,
) -> list[uuid.UUID]:
    """One event and one pending delivery per action, due at ``at``."""
    await conn.execute(
        "INSERT INTO events (id, flow_name, trigger_type, item_key, payload, created_at)"
        " VALUES ($1, $2, 'sendpulse.subscriber_added', $3, $4::jsonb, $5)",
        event_id,
        flow,
        item_key or payload.get("email", event_id),
        payload,
        at,
    )
    ids = []
    for index, action in enumerate(actions):
        did = delivery_id(event_id, index)
        await conn.execute(
            "INSERT INTO deliveries (id, event_id, flow_name, action_index, action_type,"
            " next_attempt_at, created_at) VALUES ($1, $2, $3, $4, $5, $6, $6)",
            did,
            event_id,
            flow,
            index,
            action,
            at,
        )
        ids.append(did)
    return ids


async def delivery(conn: asyncpg.Connection, did: uuid.UUID) -> asyncpg.Record:
    row = await conn.fetchrow("SELECT * FROM deliveries WHERE id = $1", did)
    assert row is not None
    return row


async def attempts(conn: asyncpg.Connection, did: uuid.UUID) -> list[asyncpg.Record]:
    return list(
        await conn.fetch("SELECT * FROM delivery_attempts WHERE delivery_id = $1 ORDER BY id", did)
    )


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    path: str


@dataclass
class Receiver:
    """A webhook receiver on 127.0.0.1 whose answers a test scripts."""

    url: str = ""
    received: list[Received] = field(default_factory=list)
    respond: Callable[[Received], web.StreamResponse] = lambda _r: web.Response(text="ok")

    def ids(self) -> list[str]:
        return [r.headers["webhook-id"] for r in self.received]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    state = Receiver()

    async def handle(request: web.Request) -> web.StreamResponse:
        got = Received(dict(request.headers.items()), await request.read(), request.path)
        got.headers = {k.lower(): v for k, v in got.headers.items()}
        state.received.append(got)
        return state.respond(got)

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    state.url = f"http://127.0.0.1:{port}"
    try:
        yield state
    finally:
        await runner.cleanup()
