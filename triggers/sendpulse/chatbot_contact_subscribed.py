"""``sendpulse.chatbot_contact_subscribed``: a new contact subscribed to a chatbot.

There is no "contacts since" call; but a new contact's dialog is as recent as the contact, so
the dialogs read newest first down to the cursor hold every contact created since. Each dialog
created since the cursor is completed with its channel's ``contacts/get`` (tags, variables,
status). The first poll of a flow only records where the account stands: it reads the dialogs
alone, so a ``start: all`` event carries the dialog's fields (no status, tags or variables).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.http_client.api_errors import UnexpectedResponse
from connector.plugins import ApiClient, Item, Strategy, Trigger
from connector.providers.chatbots_api import contact
from triggers.sendpulse._chatbots import BotParams, recent_dialogs
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime


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
        "GET /{channel}/contacts/get?id per dialog created since the cursor",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The contacts of the dialogs created since ``since``."""
        async for dialog, channel in recent_dialogs(client, since, self.params):
            person = dialog.get("contact")
            contact_id = person.get("id") if isinstance(person, dict) else None
            if not isinstance(person, dict) or not isinstance(contact_id, str) or not contact_id:
                raise UnexpectedResponse("/chatbots/dialogs: a dialog has no contact id")
            created = epoch_or_none(dialog.get("created_at"))
            if since is None:
                yield {
                    "id": contact_id,
                    "bot_id": dialog.get("bot_id"),
                    "channel": channel.name,
                    "channel_data": {"full_name": person.get("full_name")},
                    "created_at": dialog.get("created_at"),
                }
            elif created is None or created >= since:
                found = await contact(client, channel, contact_id)
                yield {**found, "channel": channel.name}

    def position_of(self, item: Item) -> float:
        # The creation time, not the activity: an old contact writing again is not new.
        return epoch(item.get("created_at"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("created_at"))
