"""A small webhook receiver for the demo: verifies signatures and drops repeats.

It is also the reference for what a real receiver does: check the Standard Webhooks signature
on the raw body, answer 2xx fast, and treat ``webhook-id`` as an idempotency key.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from datetime import UTC, datetime

import structlog
from aiohttp import web

from connector.errors import SignatureInvalid
from connector.webhook_signing import verify

log = structlog.get_logger(__name__)

SEEN_LIMIT = 100_000


class Receiver:
    """Counts what it receives; remembers recent ids to drop repeats."""

    def __init__(self, secrets: list[str]) -> None:
        self.secrets = secrets
        self.received = 0
        self.duplicates = 0
        self.rejected = 0
        self._seen: OrderedDict[str, None] = OrderedDict()

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        try:
            msg_id = verify(self.secrets, request.headers, body, now=datetime.now(UTC))
        except SignatureInvalid as exc:
            self.rejected += 1
            log.warning("demo_webhook_rejected", reason=str(exc))
            return web.json_response({"error": str(exc)}, status=401)
        if msg_id in self._seen:
            self.duplicates += 1
            log.info("demo_webhook_duplicate", webhook_id=msg_id)
            return web.json_response({"duplicate": True})
        self._seen[msg_id] = None
        if len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        self.received += 1
        try:
            payload = json.loads(body)
        except ValueError:
            payload = {}
        log.info(
            "demo_webhook_received",
            webhook_id=msg_id,
            path=request.path,
            type=payload.get("type") if isinstance(payload, dict) else None,
            flow=payload.get("flow") if isinstance(payload, dict) else None,
        )
        return web.json_response({"ok": True})


def create_app(receiver: Receiver) -> web.Application:
    app = web.Application(client_max_size=4 * 1024 * 1024)
    app.router.add_post("/{tail:.*}", receiver.handle)
    return app
