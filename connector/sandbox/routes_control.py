"""The control API under `/_sandbox/`: what tests and `connector sandbox` users turn and read."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.wire import ApiError, body, query

routes = web.RouteTableDef()


@routes.get("/_sandbox/health")
async def health(request: web.Request) -> web.Response:
    state = request.app[STATE]
    return web.json_response({"ok": True, "now": state.now()})


@routes.get("/_sandbox/settings")
async def get_settings(request: web.Request) -> web.Response:
    return web.json_response(dataclasses.asdict(request.app[STATE].settings))


@routes.put("/_sandbox/settings")
async def put_settings(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.configure(**await body(request))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response(dataclasses.asdict(state.settings))


@routes.post("/_sandbox/clients")
async def add_client(request: web.Request) -> web.Response:
    data = await body(request)
    client_id, secret = data.get("client_id"), data.get("client_secret")
    if not isinstance(client_id, str) or not isinstance(secret, str):
        raise ApiError(400, "client_id and client_secret are required strings", 400)
    request.app[STATE].auth.add_client(client_id, secret)
    return web.json_response({"result": True})


@routes.post("/_sandbox/api_keys")
async def add_api_key(request: web.Request) -> web.Response:
    data = await body(request)
    client_id = data.get("client_id")
    if not isinstance(client_id, str):
        raise ApiError(400, "client_id is required", 400)
    key = request.app[STATE].auth.add_api_key(client_id, data.get("key"))
    return web.json_response({"key": key})


@routes.post("/_sandbox/revoke")
async def revoke(request: web.Request) -> web.Response:
    data = await body(request)
    count = request.app[STATE].auth.revoke(data.get("client_id"))
    return web.json_response({"revoked": count})


@routes.get("/_sandbox/clock")
async def get_clock(request: web.Request) -> web.Response:
    return web.json_response({"now": request.app[STATE].now()})


@routes.post("/_sandbox/clock/advance")
async def advance_clock(request: web.Request) -> web.Response:
    state = request.app[STATE]
    try:
        state.clock.advance(float((await body(request)).get("seconds", 0)))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response({"now": state.now()})


@routes.post("/_sandbox/faults")
async def add_fault(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data: dict[str, Any] = await body(request)
    try:
        if "rate" in data:
            state.faults.set_rate(str(data.get("kind")), float(data["rate"]))
        else:
            state.faults.script(
                str(data.get("kind")),
                int(data.get("count", 1)),
                path_prefix=data.get("path_prefix"),
                retry_after=data.get("retry_after"),
                hang_seconds=float(data.get("hang_seconds", 3600)),
            )
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response({"pending": state.faults.pending, "rates": state.faults.rates})


@routes.delete("/_sandbox/faults")
async def clear_faults(request: web.Request) -> web.Response:
    request.app[STATE].faults.clear()
    return web.json_response({"result": True})


@routes.get("/_sandbox/requests")
async def get_requests(request: web.Request) -> web.Response:
    state = request.app[STATE]
    client_id = query(request).get("client_id")
    records = state.limits.requests(client_id)
    return web.json_response([dataclasses.asdict(r) for r in records])


@routes.get("/_sandbox/counters")
async def get_counters(request: web.Request) -> web.Response:
    counters = request.app[STATE].limits.counters
    return web.json_response({str(k): v for k, v in counters.items()})


@routes.delete("/_sandbox/requests")
async def clear_requests(request: web.Request) -> web.Response:
    request.app[STATE].limits.reset()
    return web.json_response({"result": True})
