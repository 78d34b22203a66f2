"""SendPulse webhook intake: ``POST /hooks/sendpulse/<connection>/<token>``.

SendPulse POSTs email-service events as a JSON array, batched each minute or at 100 events,
unsigned. The triggers say which of them they take (``Trigger.webhook_actions``: for the
subscriber triggers `new_emails`, `delete` and `unsubscribe`, about one member of one
``book_id``) and what each makes of the item their flow watches (``Trigger.webhook_item``).
Every flow that takes a change moves its snapshot as its own poll would, and records the event,
with the same id and payload, that the poll would make, through the same
:func:`connector.record_changes.record_changes`, so the next poll adds nothing. Actions a
trigger lists in ``webhook_polls`` (`task_status_update` for the campaign status flows) make
those flows poll now.

Other actions (`open`, `redirect`, ...) are accepted and ignored. The whole batch is checked
before anything is written: one malformed element gets a 400 and changes nothing.

A webhook carries only the email, the list and the variables, while a polled subscriber has a
status, its explanation and a phone too. Receivers cannot tell which path made an event, so
each change whose trigger names a ``webhook_lookup`` is read back (a subscriber added or
unsubscribed, with ``GET /addressbooks/{id}/emails/{email}``) before any database connection
is taken, and the event is built from that answer, as the poll builds it from the list. A
subscriber the API no longer has is left to the next poll; a batch whose lookups fail is
deferred to the polls (202).

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
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import structlog
from aiohttp import web

from connector import accounts, leases, metrics
from connector.config import Config
from connector.errors import ConnectorError
from connector.http_client.api_errors import NotFound
from connector.plan import FlowPlan
from connector.plugins import ApiClient, Gone, Item, Trigger, WebhookChange
from connector.record_changes import has_baseline, record_changes, seen_deltas
from connector.wall_clock import utc_now

log = structlog.get_logger(__name__)

MAX_BODY = 1024 * 1024
LEASE_WAIT = 5.0
LEASE_TTL = timedelta(seconds=30)


class MalformedWebhook(ValueError):
    """The body is not a batch of SendPulse webhook events."""


def change_actions(triggers: Iterable[type[Trigger]]) -> frozenset[str]:
    """The webhook actions that some trigger takes as a change of its list."""
    return frozenset(action for trigger in triggers for action in trigger.webhook_actions)


@dataclass(frozen=True)
class Taken:
    """One change, and what each flow that takes it sees after it."""

    change: WebhookChange
    flows: list[tuple[FlowPlan, Trigger, Item | Gone]]


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text[:20]} is out of range")
    return value


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def parse_batch(body: bytes, actions: Collection[str]) -> tuple[list[WebhookChange], list[str]]:
    """The changes in a body (its elements whose action is one of ``actions``, each about a
    member of a list), and the names of the other actions in it.

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
    changes: list[WebhookChange] = []
    others: list[str] = []
    for index, element in enumerate(data):
        if not isinstance(element, dict) or not isinstance(element.get("event"), str):
            raise MalformedWebhook(f"element {index} is not an object with an 'event' name")
        action = element["event"]
        if action not in actions:
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
            WebhookChange(
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
            changes, others = parse_batch(body, change_actions(config.catalog.triggers))
        except MalformedWebhook as exc:
            return self._refuse(name, 400, str(exc))

        plans = _plans(config, name)
        for action in set(others):
            for plan in plans:
                if action in plan.trigger.webhook_polls:
                    self.poll_now(plan.name)
        try:
            taken = await self._look_up(name, plans, changes)
        except ConnectorError as exc:
            metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="deferred").inc()
            log.warning(
                "webhook_deferred_to_poll", connection=name, changes=len(changes), error=str(exc)
            )
            return web.json_response({"deferred": len(changes)}, status=202)
        try:
            created = await self._apply(config, name, taken) if taken else 0
        except LeaseBusy:
            metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="deferred").inc()
            log.info("webhook_deferred_to_poll", connection=name, changes=len(taken))
            return web.json_response({"deferred": len(taken)}, status=202)
        metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="accepted").inc()
        log.info(
            "webhook_received",
            connection=name,
            changes=len(taken),
            ignored=len(others),
            events_created=created,
        )
        return web.json_response({"received": len(taken) + len(others), "events_created": created})

    async def _look_up(
        self, name: str, plans: list[FlowPlan], changes: list[WebhookChange]
    ) -> list[Taken]:
        """The changes that some flow takes, each with what those flows see after it.

        Reads each item its triggers ask for back from the API (once a path per batch),
        before any database connection is taken.
        """
        client: ApiClient | None = None
        answers: dict[str, Any] = {}
        triggers = [(plan, plan.trigger(plan.params)) for plan in plans]
        taken: list[Taken] = []
        for change in changes:
            flows: list[tuple[FlowPlan, Trigger, Item | Gone]] = []
            for plan, trigger in triggers:
                if not trigger.webhook_takes(change):
                    continue
                path = trigger.webhook_lookup(change)
                if path is not None and path not in answers:
                    client = client or self.client(name)
                    answers[path] = await _read(client, path)
                seen = trigger.webhook_item(change, None if path is None else answers[path])
                if seen is not None:
                    flows.append((plan, trigger, seen))
            if flows:
                taken.append(Taken(change, flows))
        return taken

    def _refuse(self, name: str, status: int, reason: str) -> web.Response:
        metrics.WEBHOOKS_RECEIVED.labels(connection=name, outcome="rejected").inc()
        log.warning("webhook_rejected", connection=name, status=status, reason=reason)
        return web.json_response({"error": reason}, status=status)

    async def _apply(self, config: Config, name: str, taken: list[Taken]) -> int:
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
                    for entry in taken:
                        for plan, trigger, seen in entry.flows:
                            made = await _record_seen(conn, plan, trigger, seen, account)
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


def _plans(config: Config, connection: str) -> list[FlowPlan]:
    return [plan for plan in config.plans if plan.flow.enabled and plan.connection == connection]


async def _read(client: ApiClient, path: str) -> Any:
    """The API's answer to ``GET path``; None for a 404 (the item is not there)."""
    try:
        return await client.request("GET", path)
    except NotFound:
        return None


async def _record_seen(
    conn: asyncpg.Connection, plan: FlowPlan, trigger: Trigger, seen: Item | Gone, account: str
) -> int:
    """Move the flow's snapshot as the poll would and record the event it would make."""
    if not await has_baseline(conn, plan, account=account):
        # The flow's baseline poll takes this change in like every other.
        return 0
    deltas = await seen_deltas(conn, flow_name=plan.name, trigger=trigger, seen=seen)
    recorded = await record_changes(conn, plan.flow, trigger, deltas, source="webhook")
    return recorded.created
