"""``sendpulse.chatbot_contact_subscribed``: a new contact subscribed to a chatbot.

There is no "contacts since" call; but a new contact's dialog is as recent as the contact, so
the dialogs read newest first down to the cursor hold every contact created since.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, Strategy, Trigger
from triggers.sendpulse._chatbots import BotParams, recent_dialogs
from triggers.sendpulse._dates import epoch, parse_datetime


class ChatbotContactSubscribed(Trigger):
    """A chatbot contact created after the last poll's cursor."""

    key: ClassVar[str] = "sendpulse.chatbot_contact_subscribed"
    Params = BotParams
    params: BotParams
    scope: ClassVar[str] = "chatbots"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 300.0
    payload_fields = frozenset(
        {"id", "bot_id", "channel", "status", "channel_data", "tags", "variables", "created_at"}
    )
    summary = "a contact subscribed to a chatbot"
    api_calls = (
        "GET /chatbots/dialogs?order=desc&search_after (until a dialog is older than the cursor)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The contacts of the dialogs active since ``since``."""
        async for dialog in recent_dialogs(client, since, self.params):
            contact = dialog.get("contact")
            if isinstance(contact, dict):
                yield {**contact, "channel": dialog.get("channel")}

    def position_of(self, item: Item) -> float:
        # The creation time, not the activity: an old contact writing again is not new.
        return epoch(item.get("created_at"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("created_at"))
