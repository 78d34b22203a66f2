"""SendPulse webhook intake: ``POST /hooks/sendpulse/<connection>/<token>``.

SendPulse POSTs email-service events as a JSON array, batched each minute or at 100 events,
unsigned. Each one becomes the same event, with the same id, that the matching poll trigger
would make, and the flow's snapshot takes the change too, so the next poll adds nothing:

| webhook              | flows it feeds (on the same ``book_id``)                   |
|----------------------|------------------------------------------------------------|
| `new_emails`         | `sendpulse.subscriber_added`                                |
| `delete`             | `sendpulse.subscriber_removed`                              |
| `unsubscribe`        | `sendpulse.subscriber_unsubscribed`, `..._status_changed`   |
| `task_status_update` | none directly: polls `sendpulse.campaign_status_changed` now |

Other actions (`open`, `redirect`, ...) are accepted and ignored. The whole batch is checked
before anything is written: one malformed element gets a 400 and changes nothing.

A webhook and a poll of the same connection never write at once: the intake takes the
connection's poll lease for its transaction. If a long poll holds it, the batch is left to
that poll (202): the poll is the safety net, so nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from connector import leases, metrics
from connector.config import Config, Flow
from connector.db.queries import q
from connector.diff import snapshot_event_id
from connector.engine import state_key
from connector.events import NewEvent, record_events
from connector.plugins import SnapshotChange, Trigger

log = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024
LEASE_WAIT = 5.0
LEASE_TTL = timedelta(seconds=30)

# unsubscribe: from all lists is status 6, from one list status 4 (reference §2).
UNSUBSCRIBED, UNSUBSCRIBED_ALL = 4, 6
DIRECT = {
    "new_emails": ("sendpulse.subscriber_added",),
    "delete": ("sendpulse.subscriber_removed",),
    "unsubscribe": ("sendpulse.subscriber_unsubscribed", "sendpulse.subscriber_status_changed"),
}
POLLED = {"task_status_update": ("sendpulse.campaign_status_changed",)}


class MalformedWebhook(ValueError):
    """The body is not a batch of SendPulse webhook events."""


@dataclass(frozen=True)
class Change:
    """One subscriber webhook event, checked."""

    action: str
    email: str
    book_id: int
    variables: dict[str, Any]
    from_all: bool


def parse_batch(body: bytes) -> tuple[list[Change], list[str]]:
    """The subscriber changes in a body, and the names of the other actions in it."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"the body is not JSON: {exc}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise MalformedWebhook("the body must be a JSON array of events")
    changes: list[Change] = []
    others: list[str] = []
    for index, element in enumerate(data):
        if not isinstance(element, dict) or not isinstance(element.get("event"), str):
            raise MalformedWebhook(f"element {index} is not an object with an 'event' name")
        action = element["event"]
        if action not in DIRECT:
            others.append(action)
            continue
        email = element.get("email")
        if not isinstance(email, str) or "@" not in email:
            raise MalformedWebhook(f"element {index} ({action}) has no valid 'email'")
        book = element.get("book_id")
        try:
            book_id = int(book)  # type: ignore[arg-type]  # checked just below
        except (TypeError, ValueError):
            raise MalformedWebhook(f"element {index} ({action}) has no numeric 'book_id'") from None
        variables = element.get("variables") or {}
        if not isinstance(variables, dict):
            raise MalformedWebhook(
                f"element {index} ({action}) has 'variables' that are not an object"
            )
        changes.append(
            Change(
                action=action,
                email=email.strip().lower(),
                book_id=book_id,
                variables=variables,
                from_all=str(element.get("from_all", "")).lower() in ("1", "true"),
            )
        )
    return changes, others


class WebhookIntake:
    """The handler; reads the current config on every request (reloads apply at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Callable[[], Config],
        worker_id: str,
        *,
        poll_now: Callable[[str], None] = lambda _flow: None,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        lease_wait: float = LEASE_WAIT,
    ) -> None:
        self.pool = pool
        self.config = config
        self.worker_id = worker_id
        self.poll_now = poll_now
        self.clock = clock
        self.lease_wait = lease_wait

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/hooks/sendpulse/{connection}/{token}", self.handle)]

    async def handle(self, request: web.Request) -> web.Response:
        name = request.match_info["connection"]
        config = self.config()
        connection = config.connections.get(name)
        token = connection.webhook_token if connection is not None else None
        given = request.match_info["token"].encode()
        # The same answer for an unknown connection, intake off and a wrong token.
        if token is None or not hmac.compare_digest(given, token.get_secret_value().encode()):
            metrics.WEBHOOKS_RECEIVED.labels(connection="unknown", outcome="refused").inc()
            return web.json_response({"error": "not found"}, status=404)
        too_large = f"the body is larger than {MAX_BODY} bytes"
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._refuse(name, 413, too_large)
        try:
            # The whole body, however it was chunked; the app's client_max_size caps it.
            body = await request.read()
        except web.HTTPRequestEntityTooLarge:
            return self._refuse(name, 413, too_large)
        if len(body) > MAX_BODY:
            return self._refuse(name, 413, too_large)
        try:
            changes, others = parse_batch(body)
        except MalformedWebhook as exc:
            return self._refuse(name, 400, str(exc))

        for action in set(others):
            for flow in _flows(config, name, POLLED.get(action, ())):
                self.poll_now(flow.name)
        try:
            created = await self._apply(config, name, changes) if changes else 0
        except LeaseBusy:
            metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="deferred").inc()
            log.info("webhook_deferred_to_poll", connection=name, changes=len(changes))
            return web.json_response({"deferred": len(changes)}, status=202)
        metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="accepted").inc()
        log.info(
            "webhook_received",
            connection=name,
            changes=len(changes),
            ignored=len(others),
            events_created=created,
        )
        return web.json_response(
            {"received": len(changes) + len(others), "events_created": created}
        )

    def _refuse(self, name: str, status: int, reason: str) -> web.Response:
        metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="rejected").inc()
        log.warning("webhook_rejected", connection=name, status=status, reason=reason)
        return web.json_response({"error": reason}, status=status)

    async def _apply(self, config: Config, name: str, changes: list[Change]) -> int:
        resource = leases.connection_resource(name, "")
        owner = f"intake:{self.worker_id}:{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            await self._take_lease(conn, resource, owner)
            try:
                created = 0
                async with conn.transaction():
                    for change in changes:
                        for flow in _flows(config, name, DIRECT[change.action]):
                            params = config.trigger_params[flow.name]
                            if getattr(params, "mailing_list_id", None) != change.book_id:
                                continue
                            made = await _apply_change(conn, flow, params, change)
                            if made:
                                metrics.EVENTS_CREATED.labels(flow=flow.name, source="webhook").inc(
                                    made
                                )
                            created += made
                return created
            finally:
                await leases.release(conn, resource, owner)

    async def _take_lease(self, conn: asyncpg.Connection, resource: str, owner: str) -> None:
        waited = 0.0
        while not await leases.acquire(conn, resource, owner, self.clock(), LEASE_TTL):
            if waited >= self.lease_wait:
                raise LeaseBusy(resource)
            await asyncio.sleep(0.1)
            waited += 0.1


class LeaseBusy(Exception):
    """A poll holds the connection for longer than a webhook should wait."""


def _flows(config: Config, connection: str, triggers: tuple[str, ...]) -> list[Flow]:
    return [
        f
        for f in config.flows
        if f.enabled and f.trigger.connection == connection and f.trigger.type in triggers
    ]


def _item(change: Change) -> dict[str, Any]:
    if change.action == "unsubscribe":
        status: int | None = UNSUBSCRIBED_ALL if change.from_all else UNSUBSCRIBED
    else:
        status = None
    return {
        "email": change.email,
        "status": status,
        "status_explain": None,
        "phone": None,
        "variables": change.variables,
    }


async def _apply_change(conn: asyncpg.Connection, flow: Flow, params: Any, change: Change) -> int:
    """Move the flow's snapshot as the poll would and record the event it would make."""
    from triggers import TRIGGERS

    trigger_cls = TRIGGERS.get(flow.trigger.type)
    if trigger_cls is None:
        return 0
    baseline = await conn.fetchrow(q("flow_baseline"), flow.name)
    if (
        baseline is None
        or not baseline["baseline_done"]
        or baseline["state_key"] != state_key(trigger_cls.key, params)
        or baseline["connection_id"] != flow.trigger.connection
    ):
        # Before its first poll a flow has no view of the list to compare with; its
        # baseline poll takes this change in like every other.
        return 0
    trigger: Trigger = trigger_cls(params)
    item = _item(change)
    key = trigger.key_of(item)
    previous = await conn.fetchval(q("snapshot_fingerprint"), flow.name, key)
    kind: SnapshotChange
    if change.action == "delete":
        if previous is None:
            return 0
        kind, fingerprint = "removed", None
        await conn.execute(q("snapshot_delete_item"), flow.name, key)
        payload = trigger.removed_payload(key)
    else:
        fingerprint = trigger.fingerprint_of(item)
        if previous is None:
            kind = "added"
        elif previous != fingerprint:
            kind = "changed"
        else:
            return 0
        await conn.execute(q("snapshot_upsert_item"), flow.name, key, fingerprint)
        payload = trigger.payload_of(item)
        if kind == "changed":
            payload = trigger.changed_payload(payload, previous)
    # The snapshot now differs from the list its stored digest was taken of.
    await conn.execute(q("flow_state_forget_digest"), flow.name)
    if kind not in trigger.emits or not trigger.wants(kind, payload):
        return 0
    event = NewEvent(
        id=await snapshot_event_id(conn, flow.name, trigger.key, key, kind, fingerprint),
        item_key=key,
        payload=payload,
    )
    return await record_events(conn, flow, [event], source="webhook")
