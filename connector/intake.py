"""SendPulse webhook intake: ``POST /hooks/sendpulse/<connection>/<token>``.

SendPulse POSTs email-service events as a JSON array, batched each minute or at 100 events,
unsigned. `new_emails`, `delete` and `unsubscribe` go to every subscriber flow on the same
``book_id``: each flow's snapshot takes the change as its own poll would, and records the
event, with the same id and payload, that the poll would make (`subscriber_added` for a
join, `subscriber_removed` for a delete, `subscriber_unsubscribed` and
`subscriber_status_changed` for an unsubscribe), so the next poll adds nothing.
`task_status_update` makes the `sendpulse.campaign_status_changed` flows poll now.

Other actions (`open`, `redirect`, ...) are accepted and ignored. The whole batch is checked
before anything is written: one malformed element gets a 400 and changes nothing.

A webhook carries only the email, the list and the variables, while a polled subscriber has a
status, its explanation and a phone too. Receivers cannot tell which path made an event, so
each subscriber a batch adds or unsubscribes is read back with
``GET /addressbooks/{id}/emails/{email}`` (before any database connection is taken) and the
event is built from that answer, as the poll builds it from the list. A subscriber the API no
longer has is left to the next poll; a batch whose lookups fail is deferred to the polls (202).

A webhook and a poll of the same connection never write at once: the intake takes the
connection's poll lease for its transaction. If a long poll holds it, the batch is left to
that poll (202): the poll is the safety net, so nothing is lost either way.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import uuid
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote

import asyncpg
import structlog
from aiohttp import web

from connector import accounts, leases, metrics
from connector.config import Config
from connector.db.queries import q
from connector.diff import snapshot_event_id
from connector.errors import ConnectorError
from connector.events import NewEvent, record_events
from connector.http_client.api_errors import NotFound
from connector.plan import FlowPlan
from connector.plugins import ApiClient, SnapshotChange, Trigger
from connector.poll_policy import is_fresh, state_key
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024
LEASE_WAIT = 5.0
LEASE_TTL = timedelta(seconds=30)

DIRECT = frozenset({"new_emails", "delete", "unsubscribe"})
# Every flow over a list's subscribers keeps a snapshot of it, so each takes every change, as
# its own poll would: a delete drops the email from the snapshot of `subscriber_added` too,
# so that joining again is a new event.
SUBSCRIBER_TRIGGERS = (
    "sendpulse.subscriber_added",
    "sendpulse.subscriber_removed",
    "sendpulse.subscriber_unsubscribed",
    "sendpulse.subscriber_status_changed",
    "sendpulse.subscriber_variables_changed",
)
ACTIVE = 1
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
    # The subscriber as the API has it now (email, status, status_explain, phone,
    # variables); None for a delete, which carries nothing else.
    details: dict[str, Any] | None = None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_batch(body: bytes) -> tuple[list[Change], list[str]]:
    """The subscriber changes in a body, and the names of the other actions in it.

    Raises only :class:`MalformedWebhook`, whatever the body holds.
    """
    try:
        # NaN, Infinity and overflowing floats are refused here: Postgres's jsonb and
        # int() both fail on them later.
        data = json.loads(body, parse_float=_finite, parse_constant=_no_constant)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedWebhook(f"the body is not JSON: {exc}") from None
    except RecursionError:
        raise MalformedWebhook("the body is nested too deeply") from None
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
        if not _storable([email, variables]):
            raise MalformedWebhook(
                f"element {index} ({action}) holds text Postgres cannot store "
                "(a NUL character or a lone surrogate)"
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


def _storable(value: Any) -> bool:
    """Whether every string in ``value`` survives Postgres's text and jsonb: UTF-8, no NUL."""
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, dict):
            pending.extend(item.keys())
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                return False
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
    return True


class WebhookIntake:
    """The handler; reads the current config on every request (reloads apply at once)."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        config: Callable[[], Config],
        worker_id: str,
        *,
        client: Callable[[str], ApiClient],
        poll_now: Callable[[str], None] = lambda _flow: None,
        clock: Callable[[], datetime] = utc_now,
        lease_wait: float = LEASE_WAIT,
    ) -> None:
        self.pool = pool
        self.config = config
        self.worker_id = worker_id
        self.client = client
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
            for plan in _plans(config, name, POLLED.get(action, ())):
                self.poll_now(plan.name)
        try:
            changes = await self._enrich(config, name, changes)
        except ConnectorError as exc:
            metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="deferred").inc()
            log.warning(
                "webhook_deferred_to_poll", connection=name, changes=len(changes), error=str(exc)
            )
            return web.json_response({"deferred": len(changes)}, status=202)
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

    async def _enrich(self, config: Config, name: str, changes: list[Change]) -> list[Change]:
        """The changes that feed a flow, each with the subscriber as the API has it now."""
        client: ApiClient | None = None
        looked_up: dict[tuple[int, str], dict[str, Any] | None] = {}
        enriched: list[Change] = []
        for change in changes:
            if not _feeds(config, name, change):
                continue
            if change.action == "delete":
                enriched.append(change)
                continue
            where = (change.book_id, change.email)
            if where not in looked_up:
                client = client or self.client(name)
                looked_up[where] = await _subscriber(client, *where)
            details = looked_up[where]
            if details is None:
                # Gone again already: the next poll sees the list as it is.
                continue
            enriched.append(replace(change, details=details))
        return enriched

    def _refuse(self, name: str, status: int, reason: str) -> web.Response:
        metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="rejected").inc()
        log.warning("webhook_rejected", connection=name, status=status, reason=reason)
        return web.json_response({"error": reason}, status=status)

    async def _apply(self, config: Config, name: str, changes: list[Change]) -> int:
        # The account this worker's settings reach: a flow whose state belongs to another
        # one waits for its new baseline, as after any other change of what it watches.
        account = accounts.of_connection(config.connections[name])
        resource = leases.connection_resource(name, "")
        owner = f"intake:{self.worker_id}:{uuid.uuid4().hex[:8]}"
        async with self.pool.acquire() as conn:
            await self._take_lease(conn, resource, owner)
            try:
                created = 0
                async with conn.transaction():
                    for change in changes:
                        for plan in _plans(config, name, SUBSCRIBER_TRIGGERS):
                            if getattr(plan.params, "mailing_list_id", None) != change.book_id:
                                continue
                            made = await _apply_change(conn, plan, change, account)
                            if made:
                                metrics.EVENTS_CREATED.labels(flow=plan.name, source="webhook").inc(
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


def _plans(config: Config, connection: str, triggers: tuple[str, ...]) -> list[FlowPlan]:
    return [
        plan
        for plan in config.plans
        if plan.flow.enabled and plan.connection == connection and plan.trigger.key in triggers
    ]


def _feeds(config: Config, connection: str, change: Change) -> bool:
    return any(
        getattr(plan.params, "mailing_list_id", None) == change.book_id
        for plan in _plans(config, connection, SUBSCRIBER_TRIGGERS)
    )


async def _subscriber(client: ApiClient, book_id: int, email: str) -> dict[str, Any] | None:
    """The subscriber in the shape the list call gives it, or None if not in the list."""
    path = f"/addressbooks/{book_id}/emails/{quote(email, safe='@')}"
    try:
        data = await client.request("GET", path)
    except NotFound:
        return None
    if isinstance(data, list):  # SendPulse wraps some single objects in a list
        data = data[0] if data else None
    if not isinstance(data, dict):
        return None
    raw = data.get("variables") or {}
    # The single-subscriber call lists variables as {name, type, value}; the list call,
    # which the poll reads, as a plain object.
    variables = (
        {str(v.get("name")): v.get("value") for v in raw if isinstance(v, dict)}
        if isinstance(raw, list)
        else dict(raw)
        if isinstance(raw, dict)
        else {}
    )
    return {
        "email": str(data.get("email") or email),
        "status": data.get("status"),
        "status_explain": data.get("status_explain"),
        "phone": data.get("phone"),
        "variables": variables,
    }


def _item(change: Change) -> dict[str, Any]:
    if change.details is not None:
        return change.details
    return {"email": change.email, "variables": change.variables}


async def _apply_change(
    conn: asyncpg.Connection, plan: FlowPlan, change: Change, account: str
) -> int:
    """Move the flow's snapshot as the poll would and record the event it would make."""
    flow, params = plan.flow, plan.params
    baseline = await conn.fetchrow(q("flow_baseline"), flow.name)
    if is_fresh(baseline, state_key(plan.trigger.key, params), plan.connection, account):
        # Before its first poll a flow has no view of the list to compare with (nor after
        # its connection moved to another account); its baseline poll takes this change in
        # like every other.
        return 0
    trigger: Trigger = plan.trigger(params)
    item = _item(change)
    key = trigger.key_of(item)
    previous = await conn.fetchval(q("snapshot_fingerprint"), flow.name, key)
    kind: SnapshotChange
    # A flow that pages only the inactive subscribers (not_active=1) stops seeing one who
    # is active: for its snapshot that is a removal.
    leaves_view = trigger.inactive_only and item.get("status") == ACTIVE
    if change.action == "delete" or leaves_view:
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
