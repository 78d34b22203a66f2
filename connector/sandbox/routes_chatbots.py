"""Chatbots: bots, dialogs (with a `search_after` cursor), contacts, send text, run flow.

Chatbot replies are wrapped in `{success, data}`. The error body for chatbot calls is not
documented; we answer `{"success": false, "message", "error_code"}`. Each channel lives under
its own base path (`/telegram`, `/live-chat`, `/viber/chatbots`, ...); `contacts/sendText` is
Telegram's and Messenger's only, every channel takes `contacts/send` in its own shape.
"""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from connector.sandbox.app import STATE
from connector.sandbox.chatbots import BY_BASE, ChatContact
from connector.sandbox.state import State
from connector.sandbox.wire import RawApiError, as_int, body, query, unjson

routes = web.RouteTableDef()
CHANNEL = "{channel:" + "|".join(re.escape(base) for base in BY_BASE) + "}"
SEND_TEXT = "{channel:telegram|messenger}"


def _fail(status: int, message: str) -> RawApiError:
    return RawApiError(status, {"success": False, "message": message, "error_code": status})


def _ok(data: Any) -> web.Response:
    return web.json_response({"success": True, "data": data})


def _size_skip(params: dict[str, Any], default: int = 20) -> tuple[int, int]:
    size = as_int(params.get("size") or params.get("limit"), "size", default=default)
    skip = as_int(params.get("skip") or params.get("offset"), "skip", default=0)
    if not 1 <= size <= 100 or skip < 0:
        raise _fail(422, "size must be 1..100 and skip at least 0")
    return size, skip


def _channel(request: web.Request) -> str:
    return BY_BASE[request.match_info["channel"]]


def _contact(state: State, channel: str, raw_id: Any) -> ChatContact:
    contact = state.chatbots.contacts.get(str(raw_id or ""))
    if contact is None or contact.channel != channel:
        raise _fail(404, "Contact not found")
    return contact


@routes.get("/chatbots/bots")
async def bots(request: web.Request) -> web.Response:
    chat = request.app[STATE].chatbots
    totals: dict[str, int] = {}
    for message in chat.messages:
        totals[message.bot_id] = totals.get(message.bot_id, 0) + 1
    return _ok([bot.json(totals.get(bot.id, 0)) for bot in chat.bots.values()])


def _sort_key(contact: ChatContact) -> tuple[int, str]:
    return (int(contact.inbox_position * 1000), contact.id)


def _cursor(contact: ChatContact) -> str:
    ms, contact_id = _sort_key(contact)
    return f"{ms}:{contact_id}"


@routes.get("/chatbots/dialogs")
async def dialogs(request: web.Request) -> web.Response:
    """Dialogs ordered by (latest incoming message, id); `search_after` is the last row's."""
    state = request.app[STATE]
    params = query(request)
    size, skip = _size_skip(params)
    order = str(params.get("order") or "desc").lower()
    if order not in ("asc", "desc"):
        raise _fail(422, "order must be asc or desc")
    rows = sorted(
        state.chatbots.contacts.values(),
        key=_sort_key,
        reverse=order == "desc",
    )
    after = params.get("search_after")
    if after:
        ms, _, contact_id = str(after).partition(":")
        try:
            key = (int(ms), contact_id)
        except ValueError:
            raise _fail(422, "search_after is the cursor a previous page returned") from None
        if order == "desc":
            rows = [c for c in rows if _sort_key(c) < key]
        else:
            rows = [c for c in rows if _sort_key(c) > key]
    page = rows[skip : skip + size]
    items = [c.dialog(state.chatbots.dialog_id(c)) for c in page]
    return _ok(
        {
            "list": items,
            "total": len(state.chatbots.contacts),
            "size": size,
            "search_after": _cursor(page[-1]) if page else None,
            "order": order,
        }
    )


@routes.get(f"/{CHANNEL}/contacts/get")
async def get_contact(request: web.Request) -> web.Response:
    state = request.app[STATE]
    contact = _contact(state, _channel(request), query(request).get("id"))
    return _ok(contact.json())


def _bot_contacts(state: State, channel: str, params: dict[str, Any]) -> list[ChatContact]:
    bot_id = params.get("bot_id")
    if bot_id is not None and bot_id not in state.chatbots.bots:
        raise _fail(404, "Bot not found")
    return [
        c
        for c in state.chatbots.contacts.values()
        if c.channel == channel and (bot_id is None or c.bot_id == bot_id)
    ]


@routes.get(f"/{CHANNEL}/contacts/getByTag")
async def contacts_by_tag(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    tag = params.get("tag")
    if not tag:
        raise _fail(422, "tag is required")
    size, skip = _size_skip(params)
    rows = [c for c in _bot_contacts(state, _channel(request), params) if tag in c.tags]
    return _ok([c.json() for c in rows[skip : skip + size]])


@routes.get(f"/{CHANNEL}/contacts/getByVariable")
async def contacts_by_variable(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    name = params.get("variable_name") or params.get("variable_id")
    if not name or "variable_value" not in params:
        raise _fail(422, "variable_name (or variable_id) and variable_value are required")
    value = str(params["variable_value"])
    size, skip = _size_skip(params)
    rows = [
        c
        for c in _bot_contacts(state, _channel(request), params)
        if name in c.variables and str(c.variables[name]) == value
    ]
    return _ok([c.json() for c in rows[skip : skip + size]])


@routes.post(f"/{SEND_TEXT}/contacts/sendText")
async def send_text(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    contact = _contact(state, _channel(request), data.get("contact_id"))
    text = str(data.get("text") or "")
    if not text:
        raise _fail(422, "text is required")
    message = state.chatbots.add_message(contact, text, 2, state.now())
    return _ok({"id": message.id, "contact_id": contact.id})


@routes.post(f"/{CHANNEL}/contacts/send")
async def send(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    contact = _contact(state, _channel(request), data.get("contact_id"))
    text = _sent_text(contact.channel, data)
    state.chatbots.sent.append((contact.channel, contact.id, data))
    message = state.chatbots.add_message(contact, text, 2, state.now())
    if contact.channel == "livechat":
        # The live chat file answers the sent Message itself, unwrapped.
        return web.json_response({**message.json(), "type": "text"})
    return _ok({"id": message.id, "contact_id": contact.id})


def _sent_text(channel: str, data: dict[str, Any]) -> str:
    """The text of a `contacts/send` body, in the channel's shape; 422 for another shape."""
    if channel == "whatsapp":
        message = unjson(data.get("message"))
        if not isinstance(message, dict) or not message.get("type"):
            raise _fail(422, "message is required: {type, <type>: {...}}")
        text = message.get("text")
        return str(text.get("body")) if isinstance(text, dict) else str(message)
    messages = unjson(data.get("messages"))
    if not isinstance(messages, list) or not messages:
        raise _fail(422, "messages is required: a list of {type, ...}")
    texts = []
    for item in messages:
        if not isinstance(item, dict) or not item.get("type"):
            raise _fail(422, "each message needs a type")
        body = item.get("message") if channel == "instagram" else item.get("text")
        texts.append(str(body.get("text")) if isinstance(body, dict) else str(item))
    return "\n".join(texts)


@routes.post(f"/{CHANNEL}/flows/run")
async def run_flow(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    contact = _contact(state, _channel(request), data.get("contact_id"))
    flow_id = str(data.get("flow_id") or "")
    if not flow_id:
        raise _fail(422, "flow_id is required")
    run = {
        "contact_id": contact.id,
        "flow_id": flow_id,
        "external_data": unjson(data.get("external_data")) or {},
        "at": state.now(),
    }
    state.chatbots.flow_runs.append(run)
    return _ok({"contact_id": contact.id, "flow_id": flow_id})


@routes.post(f"/{CHANNEL}/contacts/setTag")
async def set_tag(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    contact = _contact(state, _channel(request), data.get("contact_id"))
    tags = unjson(data.get("tags") or data.get("tag"))
    for tag in tags if isinstance(tags, list) else [tags]:
        if tag and str(tag) not in contact.tags:
            contact.tags.append(str(tag))
    return web.json_response({"success": True})


@routes.post(f"/{CHANNEL}/contacts/setVariable")
async def set_variable(request: web.Request) -> web.Response:
    state = request.app[STATE]
    data = await body(request)
    contact = _contact(state, _channel(request), data.get("contact_id"))
    name = data.get("variable_name") or data.get("variable_id")
    if not name:
        raise _fail(422, "variable_name is required")
    contact.variables[str(name)] = data.get("variable_value")
    return web.json_response({"success": True})


@routes.get(f"/{CHANNEL}/chats/messages")
async def chat_messages(request: web.Request) -> web.Response:
    state = request.app[STATE]
    params = query(request)
    contact = _contact(state, _channel(request), params.get("contact_id"))
    size, skip = _size_skip(params)
    order = str(params.get("order") or "asc").lower()
    rows = [m for m in state.chatbots.messages if m.contact_id == contact.id]
    if order == "desc":
        rows.reverse()
    after = params.get("search_after")
    if after:
        rows = [m for m in rows if (m.id > after if order == "asc" else m.id < after)]
    return _ok([m.json() for m in rows[skip : skip + size]])
