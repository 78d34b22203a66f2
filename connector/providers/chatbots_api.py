"""SendPulse chatbots: the hub's dialogs, and each channel's own API (contacts, messages).

The hub (``/chatbots``) lists the dialogs of every channel; a dialog names its channel only by
``service`` number. Each channel has its own base path and its own way of sending a text:
``contacts/sendText`` exists for Telegram and Messenger only, the others take
``contacts/send`` with a message object of their own shape (each channel's OpenAPI file).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, get_args

from connector.http_client.api_errors import MalformedResponse, UnexpectedResponse
from connector.plugins import ApiClient, Item

DIALOGS = "/chatbots/dialogs"
PAGE = 100

# The names flows give the channels (live chat is ``livechat``, Viber chatbots ``viber``).
ChannelName = Literal[
    "telegram", "whatsapp", "instagram", "messenger", "viber", "livechat", "tiktok"
]
TextBody = Callable[[str, str], dict[str, Any]]


def _send_text(contact_id: str, text: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "text": text}


def _messenger_text(contact_id: str, text: str) -> dict[str, Any]:
    # A reply inside Messenger's 24-hour window; tagged messages are another feature.
    return {"contact_id": contact_id, "message_type": "RESPONSE", "text": text}


def _whatsapp_text(contact_id: str, text: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "message": {"type": "text", "text": {"body": text}}}


def _instagram_text(contact_id: str, text: str) -> dict[str, Any]:
    return {"contact_id": contact_id, "messages": [{"type": "text", "message": {"text": text}}]}


def _chat_text(contact_id: str, text: str) -> dict[str, Any]:
    # live chat, TikTok and Viber: `{type: text, text: {text}}` in a `messages` list.
    return {"contact_id": contact_id, "messages": [{"type": "text", "text": {"text": text}}]}


@dataclass(frozen=True)
class Channel:
    """One chatbot channel: the name flows use, its base path, its hub ``service`` number."""

    name: str
    base: str
    service: int
    send_path: str
    text_body: TextBody

    def path(self, operation: str) -> str:
        return f"{self.base}/{operation}"


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in (
        Channel("messenger", "/messenger", 1, "contacts/sendText", _messenger_text),
        Channel("telegram", "/telegram", 3, "contacts/sendText", _send_text),
        Channel("whatsapp", "/whatsapp", 4, "contacts/send", _whatsapp_text),
        Channel("instagram", "/instagram", 5, "contacts/send", _instagram_text),
        Channel("viber", "/viber/chatbots", 6, "contacts/send", _chat_text),
        Channel("livechat", "/live-chat", 7, "contacts/send", _chat_text),
        Channel("tiktok", "/tiktok", 8, "contacts/send", _chat_text),
    )
}
BY_SERVICE = {c.service: c for c in CHANNELS.values()}
if set(get_args(ChannelName)) != set(CHANNELS):
    raise RuntimeError("ChannelName must name exactly the CHANNELS")


def channel_of(dialog: Item) -> Channel | None:
    """The dialog's channel; None for a service this connector does not read (a bridge)."""
    service = dialog.get("service")
    if not isinstance(service, int) or isinstance(service, bool):
        raise UnexpectedResponse(f"{DIALOGS}: a dialog's service is {service!r}, not a number")
    return BY_SERVICE.get(service)


def unwrap(answer: Any, where: str) -> Any:
    """Chatbot answers are ``{success, data}``; anything else is not an answer to read."""
    if not isinstance(answer, dict) or "data" not in answer:
        raise MalformedResponse(f"{where}: expected {{success, data}}, got {type(answer).__name__}")
    if answer.get("success") is False:
        raise UnexpectedResponse(f"{where}: SendPulse answered success=false")
    return answer["data"]


async def dialogs(client: ApiClient) -> AsyncIterator[Item]:
    """Every dialog, most recently active first, following ``search_after`` page to page."""
    cursor: Any = None
    seen = 0
    while True:
        query: dict[str, Any] = {"size": PAGE, "order": "desc"}
        if cursor is not None:
            query["search_after"] = cursor
        data = unwrap(await client.request("GET", DIALOGS, params=query), DIALOGS)
        rows = data.get("list") if isinstance(data, dict) else None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise MalformedResponse(f"{DIALOGS}: expected data.list to be a list of dialogs")
        seen += len(rows)
        total = data.get("total")
        if len(rows) < PAGE and isinstance(total, int) and seen < total:
            # A short page before the total: the page limit is below ours; stopping here
            # would lose the older dialogs.
            raise UnexpectedResponse(f"{DIALOGS}: {len(rows)} of {PAGE} asked, {seen} of {total}")
        for row in rows:
            yield row
        next_cursor = data.get("search_after")
        if len(rows) < PAGE or next_cursor in (None, "", cursor):
            return
        cursor = next_cursor


async def contact(client: ApiClient, channel: Channel, contact_id: str) -> Item:
    """One contact of a channel (``GET {base}/contacts/get?id=``)."""
    path = channel.path("contacts/get")
    data = unwrap(await client.request("GET", path, params={"id": contact_id}), path)
    if not isinstance(data, dict):
        raise MalformedResponse(f"{path}: expected a contact object")
    return data


async def messages(client: ApiClient, channel: Channel, contact_id: str) -> AsyncIterator[Item]:
    """A contact's messages, newest first, a page at a time (the caller stops when it may)."""
    path = channel.path("chats/messages")
    skip = 0
    while True:
        query = {"contact_id": contact_id, "order": "desc", "size": PAGE, "skip": skip}
        rows = unwrap(await client.request("GET", path, params=query), path)
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise MalformedResponse(f"{path}: expected a list of messages")
        for row in rows:
            yield row
        if len(rows) < PAGE:
            return
        skip += len(rows)


async def send_text(client: ApiClient, channel: Channel, contact_id: str, text: str) -> Any:
    """Send a plain text in the channel's own shape."""
    return await client.request(
        "POST", channel.path(channel.send_path), json=channel.text_body(contact_id, text)
    )


async def run_flow(
    client: ApiClient,
    channel: Channel,
    contact_id: str,
    flow_id: str,
    external_data: dict[str, Any],
) -> Any:
    """Start a flow for a contact (``POST {base}/flows/run``)."""
    body = {"contact_id": contact_id, "flow_id": flow_id, "external_data": external_data}
    return await client.request("POST", channel.path("flows/run"), json=body)
