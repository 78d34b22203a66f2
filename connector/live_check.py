"""``connector check --live``: one read-only look at each flow's account, held to the contract.

For each SendPulse connection a flow uses, it takes a token (SendPulse states no scopes on a
token: each trigger's read below is what proves its scope). For each flow it confirms that
every id the flow names exists (mailing list, pipeline, bot, website) and makes the first
request of one poll of its trigger, whose request and answer are checked against SendPulse's
OpenAPI files (``connector.contract``). It uses no database: no cursor moves, no event is
written. Each finding is a row: flow, what was checked, and ``ok`` or the exact difference.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp

from connector.config import Config, Connection, Flow
from connector.contract import SPEC_DIR, Contract, Exchange
from connector.errors import ConnectorError, NeedsReauth
from connector.http_client.api_retry import RetryPolicy
from connector.http_client.transport import make_limiter, query_params
from connector.providers.sendpulse_client import USER_AGENT, SendPulseClient


@dataclass(frozen=True)
class Row:
    """One finding: the flow (or connection), what was checked, and the verdict."""

    flow: str
    check: str
    result: str

    @property
    def ok(self) -> bool:
        return self.result == "ok" or self.result.startswith("ok:")


class LiveToken:
    """A token fetched once for the check; never stored."""

    def __init__(self, session: aiohttp.ClientSession, connection: Connection) -> None:
        self._session = session
        self._connection = connection
        self._token: str | None = None
        self.expires_in: float | None = None

    async def bearer(self) -> str:
        if self._token is None:
            self._token = await self._fetch()
        return self._token

    async def after_unauthorized(self, refused: str) -> str:
        self._token = await self._fetch()
        return self._token

    async def give_up(self, reason: str) -> NeedsReauth:
        return NeedsReauth(reason)

    async def _fetch(self) -> str:
        from connector.auth.client_credentials import ACCOUNT_TOKEN_PATH, fetch_client_credentials

        connection = self._connection
        if connection.api_key is not None:
            return connection.api_key.get_secret_value()
        issued = await fetch_client_credentials(
            self._session,
            make_limiter(connection.rate_limit),
            str(connection.base_url).rstrip("/") + ACCOUNT_TOKEN_PATH,
            client_id=str(connection.client_id),
            client_secret=connection.client_secret.get_secret_value()
            if connection.client_secret
            else "",
            request_timeout=connection.timeout.total_seconds(),
        )
        self.expires_in = issued.expires_in
        return issued.access_token


class FirstReadDone(Exception):
    """Stops a trigger's poll after its first request."""


class FirstRead:
    """A client for one trigger poll that makes the first request only and keeps it."""

    def __init__(self, client: SendPulseClient) -> None:
        self._client = client
        self.requests_made = 0
        self.exchange: Exchange | None = None

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any:
        answer = await self._client.request(method, path, params=params, json=json)
        self.requests_made += 1
        self.exchange = Exchange(
            method=method,
            path=path,
            query=urlencode(query_params(params) or []),
            request_type="application/json" if json is not None else None,
            request_body=_dumps(json) if json is not None else None,
            user_agent=USER_AGENT,
            status=200,
            response_type="application/json",
            response_body=_dumps(answer),
        )
        raise FirstReadDone

    async def iter_offset(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> AsyncIterator[dict[str, Any]]:
        await self.request("GET", path, params={**(params or {}), "limit": limit, "offset": 0})
        yield {}  # never reached: the request above ends the poll


def _dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _connection_of(config: Config, flow: Flow) -> str | None:
    if flow.trigger.connection:
        return flow.trigger.connection
    names = [n for n, c in config.connections.items() if c.provider == "sendpulse"]
    return names[0] if len(names) == 1 else None


async def _exists(client: SendPulseClient, name: str, value: Any) -> str:
    """``ok`` when the id the flow names exists, else what is wrong."""
    try:
        if name == "mailing_list_id":
            await client.request("GET", f"/addressbooks/{int(value)}")
            return "ok"
        if name == "pipeline_id":
            await client.request("GET", f"/crm/v1/pipelines/{int(value)}")
            return "ok"
        if name == "bot_id":
            answer = await client.request("GET", "/chatbots/bots")
            bots = answer.get("data") if isinstance(answer, dict) else None
            ids = [b.get("id") for b in bots or [] if isinstance(b, dict)]
            return "ok" if value in ids else f"no bot {value!r} (bots: {', '.join(map(str, ids))})"
        if name == "website_id":
            answer = await client.request("GET", f"/push/websites/info/{quote(str(value))}")
            return "ok" if answer else f"no website {value!r}"
    except ConnectorError as exc:
        return f"{name} {value!r}: {exc}"
    return "ok"


ID_PARAMS = ("mailing_list_id", "pipeline_id", "bot_id", "website_id")


async def check_live(
    config: Config, *, contract: Contract | None = None, now: datetime | None = None
) -> list[Row]:
    """Every finding, in flow order (connections first)."""
    contract = contract or (Contract() if SPEC_DIR.is_dir() else None)
    started = now or datetime.now(UTC)
    rows: list[Row] = []
    async with aiohttp.ClientSession(headers={"User-Agent": USER_AGENT}) as session:
        clients: dict[str, SendPulseClient] = {}
        for flow in config.flows:
            name = _connection_of(config, flow)
            if name is None or name in clients:
                continue
            connection = config.connections[name]
            if connection.provider != "sendpulse":
                continue
            token = LiveToken(session, connection)
            clients[name] = SendPulseClient(
                connection_id=name,
                session=session,
                base_url=str(connection.base_url).rstrip("/"),
                limiter=make_limiter(connection.rate_limit),
                auth=token,
                timeout=connection.timeout.total_seconds(),
                retry=RetryPolicy(attempts=3, budget=30.0),
            )
            try:
                await token.bearer()
            except ConnectorError as exc:
                rows.append(Row(f"({name})", "token", str(exc)))
                continue
            ttl = f", expires in {token.expires_in:g} s" if token.expires_in else ""
            rows.append(Row(f"({name})", "token", f"ok: issued{ttl}; scopes: none stated"))
        for flow in config.flows:
            rows += await _check_flow(config, flow, clients, contract, started)
    return rows


async def _check_flow(
    config: Config,
    flow: Flow,
    clients: dict[str, SendPulseClient],
    contract: Contract | None,
    started: datetime,
) -> list[Row]:
    plan = config.plan(flow.name)
    name = _connection_of(config, flow)
    if plan is None or plan.trigger.provider != "sendpulse" or name not in clients:
        return [Row(flow.name, flow.trigger.type, "ok: not a SendPulse trigger, not checked")]
    client = clients[name]
    rows = []
    for param in ID_PARAMS:
        if flow.trigger.params.get(param) is not None:
            value = flow.trigger.params[param]
            rows.append(Row(flow.name, f"{param} {value}", await _exists(client, param, value)))
    trigger = plan.trigger(plan.params, started=started)
    reader = FirstRead(client)
    try:
        async for _ in trigger.poll(reader, None):
            break
    except FirstReadDone:
        pass
    except ConnectorError as exc:
        return [*rows, Row(flow.name, f"{flow.trigger.type} read", f"{type(exc).__name__}: {exc}")]
    exchange = reader.exchange
    if exchange is None:
        return [*rows, Row(flow.name, f"{flow.trigger.type} read", "ok: no request needed")]
    what = f"{exchange.method} {exchange.path}"
    if contract is None:
        return [*rows, Row(flow.name, what, f"ok: answered; contract files not at {SPEC_DIR}")]
    operation = contract.find(exchange.method, exchange.path)
    if operation is None:
        return [*rows, Row(flow.name, what, "not an operation of the specs")]
    problems = contract.check_request(operation, exchange)
    problems += contract.check_response(operation, exchange)
    return [*rows, Row(flow.name, what, "ok" if not problems else "; ".join(problems))]
