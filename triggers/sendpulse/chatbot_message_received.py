"""``sendpulse.chatbot_message_received``: a contact wrote to a chatbot.

The dialogs that had an incoming message since the cursor are found newest first (one request
when nothing happened); for each, its channel's messages are read newest first until the
cursor. Only incoming messages (``direction`` 1) are events; the cursor is the message time.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.http_client.api_errors import UnexpectedResponse
from connector.plugins import ApiClient, Item, Strategy, Trigger
from connector.providers.chatbots_api import messages
from triggers.sendpulse._chatbots import BotParams, recent_dialogs
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime

INCOMING = 1


class ChatbotMessageReceived(Trigger):
    """An incoming chatbot message that no earlier poll saw."""

    key: ClassVar[str] = "sendpulse.chatbot_message_received"
    Params = BotParams
    params: BotParams
    scope: ClassVar[str] = "chatbots"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 300.0
    payload_fields = frozenset({"id", "contact_id", "bot_id", "channel", "text", "created_at"})
    summary = "a contact wrote to a chatbot"
    api_calls = (
        "GET /chatbots/dialogs?order=desc&search_after (until a dialog is older than the cursor)",
        "GET /{channel}/chats/messages?contact_id&order=desc per active dialog",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Incoming messages of the dialogs active since ``since``."""
        async for dialog, channel in recent_dialogs(client, since, self.params):
            person = dialog.get("contact")
            contact_id = person.get("id") if isinstance(person, dict) else None
            if not isinstance(contact_id, str) or not contact_id:
                raise UnexpectedResponse("/chatbots/dialogs: a dialog has no contact id")
            async for row in messages(client, channel, contact_id):
                created = epoch_or_none(row.get("created_at"))
                if since is not None and created is not None and created < since:
                    break
                if row.get("direction") == INCOMING:
                    yield {**row, "channel": channel.name}

    def position_of(self, item: Item) -> float:
        return epoch(item.get("created_at"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        data = item.get("data") or {}
        return {
            "id": item.get("id"),
            "contact_id": item.get("contact_id"),
            "bot_id": item.get("bot_id"),
            "channel": item.get("channel"),
            "text": data.get("text") if isinstance(data, dict) else None,
            "created_at": item.get("created_at"),
        }

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("created_at"))
