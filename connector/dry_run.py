"""``connector test FLOW``: one poll of a flow's trigger that changes nothing.

It reads the flow's stored cursor or snapshot, polls the trigger once, and reports what the
next real poll would emit, as the JSON body the webhook action sends. When nothing is new it
shows the most recent few items as samples, and says so. No cursor, snapshot, event or
delivery row is written. With ``deliver`` one item goes through the flow's actions marked as
a test (a ``webhook-test: true`` header and ``"test": true`` in the body), under a delivery id
that is recorded nowhere; actions that call SendPulse are skipped, since a test must not
change the account.
"""

from __future__ import annotations

import heapq
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from actions.webhook import body_for
from connector.config import Config, Flow
from connector.diff import Watermark, WatermarkTracker, event_id
from connector.errors import ConfigError, ConnectorError
from connector.plan import FlowPlan
from connector.plugins import ActionContext, StoredEvent, Trigger
from connector.poll_policy import state_key
from connector.store import flow_states, snapshot_items

SAMPLES = 3
SNAPSHOT_LIMIT = 1_000_000


@dataclass
class Found:
    """One item the trigger would emit (``sample`` False) or shows as an example (True)."""

    event: StoredEvent
    sample: bool

    def body(self) -> dict[str, Any]:
        document: dict[str, Any] = json.loads(body_for(self.event))
        return document


@dataclass
class Delivered:
    action: str
    outcome: str
    summary: str


@dataclass
class Trial:
    flow: str
    requests: int
    items_seen: int
    found: list[Found]
    delivered: list[Delivered] = field(default_factory=list)

    @property
    def new(self) -> list[Found]:
        return [f for f in self.found if not f.sample]


def find_flow(config: Config, name: str) -> Flow:
    for flow in config.flows:
        if flow.name == name:
            return flow
    names = ", ".join(f.name for f in config.flows) or "none"
    raise ConfigError(f"no flow {name!r} in {config.file}; its flows: {names}")


def _event(flow: Flow, trigger: Trigger, item: dict[str, Any], label: str) -> StoredEvent:
    key = trigger.key_of(item)
    return StoredEvent(
        id=event_id(flow.name, trigger.key, key, label),
        flow=flow.name,
        trigger=trigger.key,
        item_key=key,
        payload=trigger.payload_of(item),
        occurred_at=trigger.occurred_at(item),
        created_at=datetime.now(UTC),
    )


async def trial(
    config: Config,
    flow: Flow,
    *,
    client: Any,
    conn: Any,
    samples: int = SAMPLES,
    on_page: Callable[[int, int], None] | None = None,
) -> Trial:
    """Poll ``flow``'s trigger once against what is stored; write nothing."""
    from connector.request_count import counting

    plan = _plan(config, flow)
    params = plan.params
    started = datetime.now(UTC)
    trigger = plan.trigger(params, started)
    state = await flow_states.get(conn, flow_name=flow.name)
    known = (
        state is not None
        and state["baseline_done"]
        and state["state_key"] == state_key(trigger.key, params)
        and state["connection_id"] == flow.trigger.connection
    )
    new: list[Found] = []
    recent: list[tuple[float, int, dict[str, Any]]] = []
    seen = 0
    with counting() as sent:
        if trigger.strategy == "watermark":
            raw = state["cursor"] if known and state is not None else None
            cursor = Watermark.from_json(raw)
            cap = started.timestamp() if trigger.time_ordered else None
            tracker = WatermarkTracker(cursor, trigger.overlap, cap)
            async for item in trigger.poll(client, tracker.since if known else None):
                seen += 1
                if on_page is not None:
                    on_page(sent.value, seen)
                position = trigger.position_of(item)
                fresh = tracker.offer(trigger.key_of(item), position)
                if known and fresh and trigger.wants("new", trigger.payload_of(item)):
                    new.append(Found(_event(flow, trigger, item, "new"), sample=False))
                _keep(recent, (position, seen, item), samples)
        else:
            stored: dict[str, str] = {}
            if known:
                stored = await snapshot_items.fingerprints(
                    conn, flow_name=flow.name, limit=SNAPSHOT_LIMIT
                )
            async for item in trigger.poll(client, None):
                seen += 1
                if on_page is not None:
                    on_page(sent.value, seen)
                key = trigger.key_of(item)
                previous = stored.pop(key, None)
                fingerprint = trigger.fingerprint_of(item)
                kind = "added" if previous is None else "changed"
                if known and previous != fingerprint and kind in trigger.emits:
                    payload = trigger.payload_of(item)
                    if trigger.wants(kind, payload):
                        new.append(Found(_event(flow, trigger, item, kind), sample=False))
                # A list has no order of its own: its last items stand for the newest.
                _keep(recent, (float(seen), seen, item), samples)
        requests = sent.value
    found = new or [
        Found(_event(flow, trigger, item, "sample"), sample=True)
        for _, _, item in sorted(recent, reverse=True)
    ]
    return Trial(flow=flow.name, requests=requests, items_seen=seen, found=found)


def _keep(heap: list[tuple[float, int, dict[str, Any]]], entry: Any, size: int) -> None:
    if len(heap) < size:
        heapq.heappush(heap, entry)
    elif size:
        heapq.heappushpop(heap, entry)


async def deliver_test(
    config: Config, flow: Flow, found: Found, *, http: Any, providers: Any
) -> list[Delivered]:
    """Send ``found`` through the flow's actions, marked as a test; keep no delivery row."""
    from connector.templates import context_for, render_params

    results = []
    delivery = str(uuid.uuid4())
    for index, bound in enumerate(_plan(config, flow).actions):
        action, key = bound.action, bound.key
        if action.provider is not None:
            results.append(Delivered(key, "skipped", "calls SendPulse for real; not run in a test"))
            continue
        params = render_params(
            bound.params,
            context_for(found.event.payload, flow.name, found.event.trigger),
        )
        ctx = ActionContext(
            delivery_id=delivery,
            attempt=1,
            flow=flow.name,
            action_index=index,
            connection_id=bound.connection,
            http=http,
            providers=providers,
            clock=lambda: datetime.now(UTC),
            test=True,
        )
        try:
            result = await action().run(ctx, found.event, params)
        except ConnectorError as exc:
            results.append(Delivered(key, "failed", f"{type(exc).__name__}: {exc}"))
        else:
            results.append(Delivered(key, "delivered", result.summary))
    return results


def _plan(config: Config, flow: Flow) -> FlowPlan:
    plan = config.plan(flow.name)
    if plan is None:
        raise ConfigError(f"flow {flow.name!r} is not in {config.file}")
    return plan
