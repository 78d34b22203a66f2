"""The status page: one server-rendered HTML page on the admin listener, and its Replay form.

Replay is a POST carrying a CSRF token (an HMAC of a key made when the process starts, which
another site's page cannot read) and, when the browser sends one, an Origin of this very
host. It does what ``connector replay --delivery`` does: a dead delivery goes back to pending
under the same id; a second press finds it no longer dead and changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from importlib import resources
from typing import Any
from urllib.parse import urlencode, urlsplit

import asyncpg
import jinja2
import structlog
from aiohttp import web

from connector import progress
from connector.config import Flow
from connector.delivery_log import NothingToReplay, replay_delivery
from connector.status import gather
from connector.store import deliveries

log = structlog.get_logger(__name__)

PATH = "/status"
REPLAY_PATH = "/status/replay"
REFRESH_S = 5
# Why a replay changed nothing, as the page says it; the query string carries only the key.
REFUSALS = {
    "delivered": "was already delivered; it is not sent again",
    "pending": "is already waiting to be sent",
    "running": "is being sent right now",
    "unknown": "does not exist",
}


@dataclass
class StatusSource:
    """What the page reads from the running worker besides the database."""

    pool: asyncpg.Pool
    flows: Callable[[], list[Flow]]
    next_poll: Callable[[str], datetime | None]


def _environment() -> jinja2.Environment:
    folder = resources.files("connector") / "pages"
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(folder)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def span(seconds: float | None) -> str:
    from connector.units import format_duration

    if seconds is None:
        return "-"
    if seconds < 1:
        return "0s"
    return format_duration(timedelta(seconds=round(seconds)))


class StatusPage:
    """The page's two handlers and the CSRF key they share."""

    def __init__(self, source: StatusSource, *, refresh_s: int = REFRESH_S) -> None:
        self.source = source
        self.refresh_s = refresh_s
        self._key = secrets.token_bytes(32)
        self._template = _environment().get_template("status.html")

    def csrf_token(self) -> str:
        return hmac.new(self._key, b"replay", hashlib.sha256).hexdigest()

    def routes(self) -> list[web.AbstractRouteDef]:
        return [
            web.get("/", self.root),
            web.get(PATH, self.page),
            web.post(REPLAY_PATH, self.replay),
        ]

    async def root(self, _request: web.Request) -> web.Response:
        raise web.HTTPFound(PATH)

    async def page(self, request: web.Request) -> web.Response:
        now = datetime.now(UTC)
        async with self.source.pool.acquire() as conn:
            status = await gather(
                conn,
                self.source.flows(),
                now=now,
                next_poll=self.source.next_poll,
                in_progress=progress.active(),
            )

        def ago(when: datetime | None) -> str:
            return "-" if when is None else f"{span((now - when).total_seconds())} ago"

        def until(when: datetime | None) -> str:
            if when is None:
                return "-"
            seconds = (when - now).total_seconds()
            return "due now" if seconds < 1 else f"in {span(seconds)}"

        html = self._template.render(
            status=status,
            notice=_notice(request.query),
            csrf=self.csrf_token(),
            replay_url=REPLAY_PATH,
            refresh_s=self.refresh_s,
            ago=ago,
            until=until,
            span=span,
        )
        return web.Response(text=html, content_type="text/html", charset="utf-8")

    async def replay(self, request: web.Request) -> web.Response:
        origin = request.headers.get("Origin")
        if origin is not None and urlsplit(origin).netloc != request.host:
            raise web.HTTPForbidden(text="replay refused: the form came from another site")
        form = await request.post()
        token = str(form.get("csrf", ""))
        if not hmac.compare_digest(token.encode(), self.csrf_token().encode()):
            raise web.HTTPForbidden(text="replay refused: missing or stale CSRF token")
        delivery = str(form.get("delivery", ""))
        try:
            uuid.UUID(delivery)
        except ValueError:
            raise web.HTTPBadRequest(text="replay refused: delivery is not an id") from None
        async with self.source.pool.acquire() as conn:
            try:
                replayed = await replay_delivery(conn, delivery, datetime.now(UTC))
            except NothingToReplay:
                current = await deliveries.get(conn, delivery_id=uuid.UUID(delivery))
                state = None if current is None else current["state"]
                reason = state if state in REFUSALS else "unknown"
                log.info("replay_refused", delivery=delivery, reason=reason, source="status_page")
                raise web.HTTPSeeOther(
                    f"{PATH}?{urlencode({'not_replayed': delivery, 'reason': reason})}"
                ) from None
        log.info(
            "delivery_replayed",
            delivery=replayed.id,
            flow=replayed.flow_name,
            event_id=replayed.event_id,
            source="status_page",
        )
        raise web.HTTPSeeOther(f"{PATH}?{urlencode({'replayed': replayed.id})}")


def _notice(query: Any) -> dict[str, str] | None:
    def valid(text: str) -> str | None:
        try:
            return str(uuid.UUID(text))
        except ValueError:
            return None

    replayed = valid(query.get("replayed", ""))
    if replayed:
        return {"kind": "ok", "text": f"Delivery {replayed} replayed: it goes out again shortly."}
    refused = valid(query.get("not_replayed", ""))
    if refused:
        why = REFUSALS.get(query.get("reason", ""), REFUSALS["unknown"])
        return {"kind": "refused", "text": f"Delivery {refused} {why}."}
    return None


def status_routes(source: StatusSource) -> list[web.AbstractRouteDef]:
    return StatusPage(source).routes()
