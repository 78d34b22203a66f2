"""The control API under `/_sandbox/`: what tests and `connector sandbox` users turn and read."""

from __future__ import annotations

import dataclasses
from typing import Any

from aiohttp import web

from connector.sandbox import appdirectory
from connector.sandbox.app import STATE
from connector.sandbox.generator import changes_json, generator_for
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


# -- App Directory -------------------------------------------------------------------------
@routes.post("/_sandbox/apps/code")
async def app_code(request: web.Request) -> web.Response:
    """Mint a login code for `{app_id, secret, user_id?}` (registers the app if new)."""
    data = await body(request)
    app_id, secret = data.get("app_id"), data.get("secret")
    if not isinstance(app_id, str) or not isinstance(secret, str):
        raise ApiError(400, "app_id and secret are required strings", 400)
    user_id = int(data.get("user_id") or 1)
    code = appdirectory.mint_code(request.app[STATE], app_id, secret, user_id)
    return web.json_response({"code": code, "expires_in": appdirectory.CODE_TTL})


@routes.post("/_sandbox/apps/uninstall")
async def app_uninstall(request: web.Request) -> web.Response:
    """Uninstall `{client_id}` and POST the uninstall JSON to `{url}`."""
    data = await body(request)
    try:
        status = await appdirectory.uninstall(
            request.app[STATE], str(data.get("client_id")), str(data.get("url"))
        )
    except KeyError:
        raise ApiError(404, "No install with that client_id", 404) from None
    return web.json_response({"result": True, "receiver_status": status})


# -- webhooks ------------------------------------------------------------------------------
@routes.post("/_sandbox/webhooks/flush")
async def flush_webhooks(request: web.Request) -> web.Response:
    sent = await request.app[STATE].webhooks.flush()
    return web.json_response({"batches": len(sent), "events": sum(len(d.events) for d in sent)})


@routes.get("/_sandbox/webhooks/deliveries")
async def webhook_deliveries(request: web.Request) -> web.Response:
    deliveries = request.app[STATE].webhooks.deliveries
    return web.json_response([dataclasses.asdict(d) for d in deliveries])


# -- seeding and the generator -------------------------------------------------------------
@routes.post("/_sandbox/seed")
async def seed(request: web.Request) -> web.Response:
    """Add a seed's data (`{"seed": "demo"}` or `"big:100000"`) to the running sandbox."""
    from connector.sandbox.seed import apply_seed

    state = request.app[STATE]
    try:
        apply_seed(state, str((await body(request)).get("seed") or ""))
    except ValueError as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response({"books": [b.summary() for b in state.books.values()]})


@routes.post("/_sandbox/generator")
async def generator_rate(request: web.Request) -> web.Response:
    """Start the generator at `{"rate": changes per second}`; rate 0 stops it."""
    generator = generator_for(request.app[STATE])
    try:
        generator.start(float((await body(request)).get("rate") or 0))
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response({"running": generator.running, "rate": generator.rate})


@routes.post("/_sandbox/generator/step")
async def generator_step(request: web.Request) -> web.Response:
    """Make `{"count": n}` changes now; answers the changes made."""
    generator = generator_for(request.app[STATE])
    try:
        count = int((await body(request)).get("count") or 1)
    except (TypeError, ValueError) as exc:
        raise ApiError(400, str(exc), 400) from exc
    return web.json_response(changes_json(generator.step(count)))


@routes.get("/_sandbox/generator/changes")
async def generator_changes(request: web.Request) -> web.Response:
    """The changes kept so far (the last 100,000); `?since=N` skips the first N of them."""
    generator = generator_for(request.app[STATE])
    since = int(query(request).get("since") or 0)
    kept = list(generator.changes)[since:]
    return web.json_response({"total": generator.total, "changes": changes_json(kept)})
