"""The aiohttp application: one gateway middleware in front of every SendPulse route.

The gateway does, in order: added latency, scripted/random faults, the bearer-token check,
the per-client rate limit, the handler (turning `ApiError` into SendPulse's JSON body), and
a record of the call in the request log. Control routes under `/_sandbox/` skip all of it.
In front of it, `merged_slashes` routes a path sent with a double slash, and with
`CONNECTOR_SANDBOX_RECORD` set, the exchange recorder logs each call and its answer.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from aiohttp.typedefs import Middleware
from yarl import URL

from connector.sandbox.exchanges import FAULT, PATH_AS_SENT, record_path, recorder
from connector.sandbox.faults import Fault
from connector.sandbox.limits import RequestRecord
from connector.sandbox.state import State
from connector.sandbox.wire import SENT, ApiError

log = structlog.get_logger(__name__)
STATE = web.AppKey("sandbox_state", State)
STOPPING = web.AppKey("sandbox_stopping", asyncio.Event)
CLIENT_ID = web.RequestKey("sandbox_client_id", str)

# Paths that carry no bearer token: the token calls themselves.
PUBLIC_PATHS = (
    "/oauth/access_token",
    "/oauth/access_token/market",
    "/market-service/oauth/authorize",
)
CONTROL_PREFIX = "/_sandbox/"
BODY_KEPT = 4096
TICK_SECONDS = 0.2

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
_random = random.Random()  # noqa: S311 - latency jitter, not security

UNAUTHORIZED_BODY = {"message": "Unauthorized", "error_code": 401}


def rate_limit_body(limit: float | None) -> dict[str, object]:
    shown = "10" if limit is None else f"{limit:g}"
    return {
        "message": f"Too many requests: more than {shown} requests per second",
        "error_code": 2020202020,
    }


@web.middleware
async def gateway(request: web.Request, handler: Handler) -> web.StreamResponse:
    path = _merge_slashes(request.path)
    if path.startswith(CONTROL_PREFIX):
        try:
            return await handler(request)
        except ApiError as exc:
            return web.json_response(exc.body, status=exc.status)
    state = request.app[STATE]
    status = 0
    sent = await request.read() if request.body_exists else b""
    request[SENT] = sent
    try:
        response = await _serve(request, handler, state, path)
        status = response.status
        return response
    finally:
        state.limits.record(
            RequestRecord(
                request.method,
                path,
                request.rel_url.raw_query_string,
                status,
                state.now(),
                request.get(CLIENT_ID) or _peek_client(request, state),
                # A long request log must not hold bulk bodies whole.
                sent[:BODY_KEPT].decode("utf-8", "replace"),
            )
        )


async def _serve(
    request: web.Request, handler: Handler, state: State, path: str
) -> web.StreamResponse:
    settings = state.settings
    if settings.latency or settings.jitter:
        await asyncio.sleep(settings.latency + _random.uniform(0, settings.jitter))
    fault = state.faults.take(path)
    if fault is not None:
        request[FAULT] = fault.kind
        return await _fault(request, fault)
    if path not in PUBLIC_PATHS:
        token = _bearer(request)
        valid = state.auth.valid(token, state.now()) if token else None
        if valid is None:
            return web.json_response(UNAUTHORIZED_BODY, status=401)
        request[CLIENT_ID] = valid.client_id
        hit = state.limits.admit(valid.client_id, state.now())
        if hit == "second":
            return web.json_response(rate_limit_body(settings.rate_limit), status=429)
        if hit == "minute":
            # The per-minute quota is documented only as "HTTP 429"; the body shape is ours.
            body = {
                "message": "Too many requests: the per-minute quota is used up",
                "error_code": 429,
            }
            return web.json_response(body, status=429)
    try:
        return await handler(request)
    except ApiError as exc:
        return web.json_response(exc.body, status=exc.status)
    except (web.HTTPException, asyncio.CancelledError):
        raise
    except Exception:
        # A sandbox bug must still look like an API's 500, and be loud in the log.
        log.exception("sandbox_handler_failed", method=request.method, path=path)
        body = {"message": "Internal Server Error", "error_code": 500}
        return web.json_response(body, status=500)


def _bearer(request: web.Request) -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _peek_client(request: web.Request, state: State) -> str | None:
    token = _bearer(request)
    found = state.auth.lookup(token) if token else None
    return found.client_id if found else None


async def _fault(request: web.Request, fault: Fault) -> web.StreamResponse:
    if fault.kind == "500":
        return web.json_response(
            {"message": "Internal Server Error", "error_code": 500}, status=500
        )
    if fault.kind == "429":
        headers = {}
        if fault.retry_after is not None:
            headers["Retry-After"] = f"{fault.retry_after:g}"
        return web.json_response(rate_limit_body(None), status=429, headers=headers)
    if fault.kind == "malformed":
        return web.Response(text='{"result": tru', content_type="application/json")
    if fault.kind == "empty":
        # A 200 with no body at all, where a list is expected.
        return web.Response(status=200, content_type="application/json")
    if fault.kind == "wrapped":
        # A shape the endpoint does not document: an (empty) list inside an object.
        return web.json_response({"data": []})
    if fault.kind == "hang":
        stopping = request.app[STOPPING]
        try:
            await asyncio.wait_for(stopping.wait(), fault.hang_seconds)
        except TimeoutError:
            pass
    # "drop", and a hang that ends: close the socket with no reply at all.
    if request.transport is not None:
        request.transport.close()
    raise asyncio.CancelledError


def _merge_slashes(path: str) -> str:
    return re.sub(r"/{2,}", "/", path) if "//" in path else path


@web.middleware
async def merged_slashes(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Route a path sent with a double slash as the merged path (pysendpulse's `//push/tasks`,
    the PHP SDK's `//addressbooks/{id}/emails/variable`).

    It runs first, because aiohttp clones a request only before its body is read; the clone
    carries the merged path's route, and `_fallback` (where the router sent the original)
    hands it to that route's handler.
    """
    raw_path = request.rel_url.raw_path
    if "//" not in raw_path:
        return await handler(request)
    raw_query = request.rel_url.raw_query_string
    merged = _merge_slashes(raw_path) + (f"?{raw_query}" if raw_query else "")
    clone = request.clone(rel_url=URL(merged, encoded=True))
    match = await request.app.router.resolve(clone)
    if match.http_exception is not None:
        return await handler(request)
    match.add_app(request.app)
    match.freeze()
    clone._match_info = match  # aiohttp's own routing step does exactly this
    clone[PATH_AS_SENT] = raw_path
    return await handler(clone)


async def _fallback(request: web.Request) -> web.StreamResponse:
    """No route: 404, unless `merged_slashes` found the request its route."""
    routed = request.match_info.handler
    if routed is not _fallback:
        return await routed(request)
    raise ApiError(404, "Not Found", 404)


def create_app(state: State) -> web.Application:
    """The sandbox as an aiohttp application over `state`."""
    from connector.sandbox import (
        routes_auth,
        routes_books,
        routes_campaigns,
        routes_channels,
        routes_chatbots,
        routes_control,
        routes_crm,
        routes_smtp,
        routes_webhooks,
    )

    sink = record_path()
    middlewares: list[Middleware] = [merged_slashes, gateway]
    if sink is not None:
        middlewares.insert(1, recorder(sink))
    app = web.Application(middlewares=middlewares, client_max_size=64 * 1024 * 1024)
    app[STATE] = state
    app[STOPPING] = asyncio.Event()
    modules = (
        routes_control,
        routes_auth,
        routes_books,
        routes_campaigns,
        routes_smtp,
        routes_channels,
        routes_crm,
        routes_chatbots,
        routes_webhooks,
    )
    for module in modules:
        app.add_routes(module.routes)
    app.router.add_route("*", "/{tail:.*}", _fallback)

    async def _on_shutdown(app: web.Application) -> None:
        app[STOPPING].set()

    app.on_shutdown.append(_on_shutdown)
    app.cleanup_ctx.append(_ticker)
    return app


async def _ticker(app: web.Application) -> AsyncIterator[None]:
    """Let wall time move campaigns along (and flush webhook batches) with no request."""
    state = app[STATE]

    async def loop() -> None:
        while True:
            await asyncio.sleep(TICK_SECONDS)
            state.tick()

    task = asyncio.create_task(loop())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    if state.generator is not None:
        state.generator.stop()
    await state.webhooks.close()
