"""The SendPulse REST client: every call of a connection goes through here.

Each request waits for the connection's rate limiter, carries a bearer token from the
connection's token manager, and is retried on 429, 5xx, timeouts and dropped connections
with exponential backoff and full jitter, bounded in attempts and total time, never sooner
than ``Retry-After``. A 401 invalidates the token, refreshes it once and retries once; a
second 401 marks the connection ``needs_reauth`` and raises :class:`NeedsReauth`.
"""

from __future__ import annotations

import asyncio
import json as jsonlib
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote

import aiohttp
import structlog
from aiolimiter import AsyncLimiter

from connector import metrics
from connector.auth.tokens import Authorizer
from connector.errors import RetriableError
from connector.http_client.api_errors import (
    RATE_LIMIT_CODE,
    RateLimited,
    RetryLater,
    UnexpectedResponse,
    error_from_reply,
)
from connector.http_client.api_retry import RetryPolicy, Sleep, parse_retry_after
from connector.http_client.parsing import as_list, decode_json, model
from connector.http_client.transport import Reply, send
from connector.providers.models import (
    Campaign,
    Created,
    MailingList,
    SmtpEmail,
    Subscriber,
    Total,
)
from connector.request_count import count_request

log = structlog.get_logger(__name__)

PAGE_MAX = 100
# Names this client's calls in the far side's logs (and in the sandbox's exchange log, where
# the contract tests tell our requests from the SDK wire forms that the sandbox tests send).
USER_AGENT = "sendpulse-connector"


class SendPulseClient:
    """One SendPulse connection's API: rate-limited, authorised, retried."""

    def __init__(
        self,
        *,
        connection_id: str,
        session: aiohttp.ClientSession,
        base_url: str,
        limiter: AsyncLimiter,
        auth: Authorizer,
        timeout: float = 30.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.connection_id = connection_id
        self.requests_made = 0
        self.retries = 0
        self._session = session
        self._base_url = base_url.rstrip("/")
        self._limiter = limiter
        self._auth = auth
        self._timeout = timeout
        self._retry = retry or RetryPolicy()
        self._sleep = sleep
        self._counted: dict[int | str, Any] = {}

    # -- the core ---------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        """The parsed JSON body; raises RetriableError / FatalError / NeedsReauth."""
        policy = self._retry
        started = policy.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                return await self._authorised(method, path, params, json)
            except RetryLater:
                raise  # a quota measured in minutes: the delivery's schedule handles it
            except RetriableError as exc:
                delay = policy.delay(attempt, exc.retry_after)
                spent = policy.monotonic() - started
                if attempt >= policy.attempts or spent + delay > policy.budget:
                    log.warning(
                        "provider_gave_up",
                        connection=self.connection_id,
                        method=method,
                        path=path,
                        attempts=attempt,
                        error=str(exc),
                    )
                    raise
                self.retries += 1
                log.info(
                    "provider_retry",
                    connection=self.connection_id,
                    method=method,
                    path=path,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=str(exc),
                )
                await self._sleep(delay)

    async def _authorised(
        self, method: str, path: str, params: Mapping[str, Any] | None, json: Any
    ) -> Any:
        token = await self._auth.bearer()
        reply = await self._send(method, path, params, json, token)
        if reply.status == 401:
            token = await self._auth.after_unauthorized(token)
            reply = await self._send(method, path, params, json, token)
            if reply.status == 401:
                raise await self._auth.give_up("a fresh token was refused too (HTTP 401)")
        return self._result(reply)

    async def _send(
        self, method: str, path: str, params: Mapping[str, Any] | None, json: Any, token: str
    ) -> Reply:
        self.requests_made += 1
        count_request()
        try:
            reply = await send(
                self._session,
                self._limiter,
                method,
                self._base_url + path,
                request_timeout=self._timeout,
                params=params,
                json=json,
                headers={
                    "Authorization": f"Bearer {token}",
                    "Accept": "application/json",
                    "User-Agent": USER_AGENT,
                },
            )
        except RetriableError:
            self._requests_counted("error").inc()
            raise
        self._requests_counted(reply.status).inc()
        return reply

    def _requests_counted(self, status: int | str) -> Any:
        # The counter's child per status, looked up once: labels() checks its arguments and
        # takes a lock at every call, on every request of every poll.
        child = self._counted.get(status)
        if child is None:
            child = self._counted[status] = metrics.API_REQUESTS.labels(
                connection=self.connection_id, status=str(status)
            )
        return child

    def _result(self, reply: Reply) -> Any:
        if 200 <= reply.status < 300:
            answer = decode_json(reply.body)
            if isinstance(answer, dict) and str(answer.get("error_code")) == str(RATE_LIMIT_CODE):
                # The files do not say which HTTP status comes with 2020202020: whatever it
                # is, it is the rate limit, never data.
                metrics.RATE_LIMITED.labels(connection=self.connection_id).inc()
                raise error_from_reply(429, answer)
            return answer
        try:
            body: Any = jsonlib.loads(reply.body) if reply.body.strip() else None
        except (ValueError, UnicodeDecodeError):
            body = reply.body[:200].decode("utf-8", "replace")
        error = error_from_reply(
            reply.status, body, retry_after=parse_retry_after(reply.headers.get("Retry-After"))
        )
        if isinstance(error, RateLimited):
            metrics.RATE_LIMITED.labels(connection=self.connection_id).inc()
        raise error

    # -- paging -----------------------------------------------------------------------------

    async def iter_offset(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = PAGE_MAX
    ) -> AsyncIterator[dict[str, Any]]:
        """Every item of a limit/offset list, page by page, until a short page."""
        offset = 0
        previous: list[Any] | None = None
        while True:
            page = as_list(
                await self.request(
                    "GET", path, params={**(params or {}), "limit": limit, "offset": offset}
                )
            )
            if page and page == previous:
                # An endpoint that ignores offset would otherwise be paged forever.
                raise UnexpectedResponse(f"{path} returned the same page for offset {offset}")
            for item in page:
                yield item
            if len(page) < limit:
                return
            offset += len(page)
            previous = page

    async def iter_start_count(
        self, path: str, *, params: Mapping[str, Any] | None = None, count: int = PAGE_MAX
    ) -> AsyncIterator[dict[str, Any]]:
        """Lists paged with ``start``/``count`` (the email verifier)."""
        start = 0
        while True:
            page = as_list(
                await self.request(
                    "GET", path, params={**(params or {}), "start": start, "count": count}
                )
            )
            for item in page:
                yield item
            if len(page) < count:
                return
            start += len(page)

    async def iter_search_after(
        self, path: str, *, params: Mapping[str, Any] | None = None, size: int = PAGE_MAX
    ) -> AsyncIterator[dict[str, Any]]:
        """Chatbot lists: ``{list, search_after}`` pages, following the cursor until it stops."""
        cursor: Any = None
        while True:
            query = {**(params or {}), "size": size}
            if cursor is not None:
                query["search_after"] = cursor
            body = await self.request("GET", path, params=query)
            data = body.get("data") if isinstance(body, dict) else body
            page = as_list(data.get("list") if isinstance(data, dict) else data)
            for item in page:
                yield item
            next_cursor = data.get("search_after") if isinstance(data, dict) else None
            if len(page) < size or next_cursor in (None, "", cursor):
                return
            cursor = next_cursor

    # -- mailing lists (reference §2) ------------------------------------------------------

    async def mailing_lists(self) -> list[MailingList]:
        return [model(MailingList, item) async for item in self.iter_offset("/addressbooks")]

    async def mailing_list(self, list_id: int) -> MailingList:
        return model(MailingList, await self.request("GET", f"/addressbooks/{int(list_id)}"))

    async def create_mailing_list(self, name: str) -> int:
        created = model(
            Created, await self.request("POST", "/addressbooks", json={"bookName": name})
        )
        if created.id is None:
            raise UnexpectedResponse("create mailing list: the reply carries no id")
        return created.id

    def iter_subscribers(self, list_id: int) -> AsyncIterator[dict[str, Any]]:
        """Raw subscriber rows (email, status, phone, variables) of one list."""
        return self.iter_offset(f"/addressbooks/{int(list_id)}/emails")

    async def subscribers(self, list_id: int) -> list[Subscriber]:
        return [model(Subscriber, item) async for item in self.iter_subscribers(list_id)]

    async def subscriber(self, list_id: int, email: str) -> Subscriber:
        path = f"/addressbooks/{int(list_id)}/emails/{quote(email, safe='@')}"
        return model(Subscriber, await self.request("GET", path))

    async def subscriber_total(self, list_id: int) -> int:
        total = model(
            Total, await self.request("GET", f"/addressbooks/{int(list_id)}/emails/total")
        )
        return total.total or 0

    async def add_subscribers(
        self,
        list_id: int,
        emails: list[dict[str, Any]] | list[str],
        *,
        extra: Mapping[str, Any] | None = None,
    ) -> Any:
        """Upsert emails (strings or ``{email, variables}``) into a list."""
        body = {"emails": list(emails), **(extra or {})}
        return await self.request("POST", f"/addressbooks/{int(list_id)}/emails", json=body)

    async def delete_subscribers(self, list_id: int, emails: list[str]) -> Any:
        return await self.request(
            "DELETE", f"/addressbooks/{int(list_id)}/emails", json={"emails": emails}
        )

    async def unsubscribe(self, list_id: int, emails: list[str]) -> Any:
        return await self.request(
            "POST", f"/addressbooks/{int(list_id)}/emails/unsubscribe", json={"emails": emails}
        )

    async def set_variables(self, list_id: int, email: str, variables: Mapping[str, Any]) -> Any:
        body = {
            "email": email,
            "variables": [{"name": k, "value": v} for k, v in variables.items()],
        }
        return await self.request(
            "POST", f"/addressbooks/{int(list_id)}/emails/variable", json=body
        )

    # -- campaigns, SMTP, events (reference §3, §5, §6) -------------------------------------

    def iter_campaigns(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        return self.iter_offset("/campaigns", params=params)

    async def campaign(self, campaign_id: int) -> Campaign:
        return model(Campaign, await self.request("GET", f"/campaigns/{int(campaign_id)}"))

    async def create_campaign(self, body: Mapping[str, Any]) -> Created:
        return model(Created, await self.request("POST", "/campaigns", json=dict(body)))

    def iter_smtp_emails(self, **params: Any) -> AsyncIterator[dict[str, Any]]:
        return self.iter_offset("/smtp/emails", params=params)

    async def smtp_emails(self, **params: Any) -> list[SmtpEmail]:
        return [model(SmtpEmail, item) async for item in self.iter_smtp_emails(**params)]

    async def send_email(self, email: Mapping[str, Any]) -> Any:
        """POST /smtp/emails with ``{email: {...}}``; returns ``{result, id}``."""
        return await self.request("POST", "/smtp/emails", json={"email": dict(email)})

    async def send_event(self, name: str, payload: Mapping[str, Any]) -> Any:
        """Automation 360: POST /events/name/{event}."""
        return await self.request(
            "POST", f"/events/name/{quote(name, safe='')}", json=dict(payload)
        )
