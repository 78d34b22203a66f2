"""Outgoing email-service webhooks: registrations, and batched POSTs of JSON event arrays.

SendPulse batches events per URL and sends each batch as one JSON array, every minute or as
soon as 100 events are waiting; both figures are settings here. There is no signature and,
as far as the documentation says, no retry: a failed POST is recorded and dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import aiohttp

if TYPE_CHECKING:
    from connector.sandbox.state import State

ACTIONS = (
    "new_emails",
    "delete",
    "unsubscribe",
    "task_status_update",
    "open",
    "delivered",
    "redirect",
    "spam",
    "hard_bounces",
    "soft_bounces",
)
USER_ID = 1


@dataclass
class Registration:
    """One registered (url, action) pair, as SendPulse lists them: one row per action."""

    id: int
    url: str
    action: str

    def json(self) -> dict[str, Any]:
        return {"id": self.id, "user_id": USER_ID, "url": self.url, "action": self.action}


@dataclass
class Delivery:
    """One POSTed batch: where, what, and the receiver's status (0: it could not connect)."""

    url: str
    events: list[dict[str, Any]]
    status: int
    at: float


@dataclass
class _Queue:
    events: list[dict[str, Any]] = field(default_factory=list)
    since: float = 0.0


class WebhookHub:
    """Listens to the state's events and POSTs them in batches to the registered URLs."""

    def __init__(self, state: State) -> None:
        self.state = state
        self.registrations: dict[int, Registration] = {}
        self.deliveries: list[Delivery] = []
        self._next_id = 1
        self._queues: dict[str, _Queue] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._session: aiohttp.ClientSession | None = None
        state.listeners.append(self.receive)
        state.tick_hooks.append(self.check)

    # -- registrations -------------------------------------------------------------------
    def register(self, url: str, actions: list[str]) -> list[Registration]:
        rows = []
        for action in actions:
            row = Registration(self._next_id, url, action)
            self.registrations[row.id] = row
            self._next_id += 1
            rows.append(row)
        return rows

    # -- events --------------------------------------------------------------------------
    def receive(self, event: dict[str, Any]) -> None:
        urls = {r.url for r in self.registrations.values() if r.action == event.get("event")}
        for url in urls:
            queue = self._queues.setdefault(url, _Queue())
            if not queue.events:
                queue.since = self.state.now()
            queue.events.append(event)
            if len(queue.events) >= self.state.settings.webhook_batch:
                self._send(url)

    def pending(self) -> int:
        return sum(len(q.events) for q in self._queues.values())

    def check(self) -> None:
        """Send every batch whose interval has passed on the sandbox clock."""
        due = self.state.now() - self.state.settings.webhook_interval
        for url, queue in list(self._queues.items()):
            if queue.events and queue.since <= due:
                self._send(url)

    async def flush(self) -> list[Delivery]:
        """Send everything now and wait for the POSTs; returns the deliveries made."""
        before = len(self.deliveries)
        for url in list(self._queues):
            self._send(url)
        await self.drain()
        return self.deliveries[before:]

    async def drain(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _send(self, url: str) -> None:
        queue = self._queues.pop(url, None)
        if queue is None or not queue.events:
            return
        batch_size = self.state.settings.webhook_batch
        for start in range(0, len(queue.events), batch_size):
            batch = queue.events[start : start + batch_size]
            try:
                task = asyncio.get_running_loop().create_task(self._post(url, batch))
            except RuntimeError:
                # No loop yet (the state is being seeded): keep the events for later.
                self._queues.setdefault(url, _Queue(since=queue.since)).events.extend(batch)
                continue
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _post(self, url: str, batch: list[dict[str, Any]]) -> None:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=15))
        status = 0
        with contextlib.suppress(aiohttp.ClientError, TimeoutError):
            async with self._session.post(url, json=batch) as resp:
                status = resp.status
        self.deliveries.append(Delivery(url, batch, status, self.state.now()))

    async def close(self) -> None:
        await self.drain()
        if self._session is not None:
            await self._session.close()
            self._session = None
