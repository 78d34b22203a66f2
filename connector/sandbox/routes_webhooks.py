"""`/v2/email-service/webhook`: register, list, change and remove webhook URLs.

These v2 calls answer `{success, data}`, one row per (url, action).
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.webhooks import ACTIONS, Registration
from connector.sandbox.wire import RawApiError, as_int, as_list, body

routes = web.RouteTableDef()
BASE = "/v2/email-service/webhook"


def _fail(status: int, message: str) -> RawApiError:
    return RawApiError(status, {"success": False, "message": message, "error_code": status})


def _url(data: dict[str, Any]) -> str:
    url = str(data.get("url") or "").strip()
    if not url.startswith(("http://", "https://")):
        raise _fail(422, "url must be an http(s) URL")
    return url


def _actions(data: dict[str, Any]) -> list[str]:
    actions = [str(a) for a in as_list(data.get("actions") or data.get("action"))]
    if not actions:
        raise _fail(422, "actions are required")
    unknown = [a for a in actions if a not in ACTIONS]
    if unknown:
        raise _fail(422, f"unknown actions {unknown}; known: {', '.join(ACTIONS)}")
    return actions


def _row(request: web.Request) -> Registration:
    hub = request.app[STATE].webhooks
    row = hub.registrations.get(as_int(request.match_info["id"], "id"))
    if row is None:
        raise _fail(404, "Webhook not found")
    return row


@routes.get(BASE)
async def list_webhooks(request: web.Request) -> web.Response:
    rows = request.app[STATE].webhooks.registrations.values()
    return web.json_response({"success": True, "data": [r.json() for r in rows]})


@routes.post(BASE)
async def add_webhook(request: web.Request) -> web.Response:
    data = await body(request)
    rows = request.app[STATE].webhooks.register(_url(data), _actions(data))
    return web.json_response({"success": True, "data": [r.json() for r in rows]})


@routes.get(BASE + "/{id}")
async def get_webhook(request: web.Request) -> web.Response:
    return web.json_response({"success": True, "data": _row(request).json()})


@routes.put(BASE + "/{id}")
async def change_webhook(request: web.Request) -> web.Response:
    row = _row(request)
    data = await body(request)
    row.url = _url(data)
    if data.get("action") or data.get("actions"):
        row.action = _actions(data)[0]
    # The file documents `data` as a list of booleans for a change and a delete.
    return web.json_response({"success": True, "data": [True]})


@routes.delete(BASE + "/{id}")
async def delete_webhook(request: web.Request) -> web.Response:
    row = _row(request)
    del request.app[STATE].webhooks.registrations[row.id]
    return web.json_response({"success": True, "data": [True]})


@routes.delete(BASE)
async def delete_webhooks(request: web.Request) -> web.Response:
    """Remove by id list in the body (`{"ids": [..]}`) or every row of one `url`."""
    hub = request.app[STATE].webhooks
    data = await body(request)
    ids = {as_int(i, "id") for i in as_list(data.get("ids") or data.get("id"))}
    url = data.get("url")
    if not ids and not url:
        raise _fail(422, "give ids or url")
    for row in list(hub.registrations.values()):
        if row.id in ids or row.url == url:
            del hub.registrations[row.id]
    return web.json_response({"success": True, "data": True})
