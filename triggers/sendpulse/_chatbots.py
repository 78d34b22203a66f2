"""What the chatbot triggers share: the hub's dialogs, most recently active first.

``GET /chatbots/dialogs?order=desc`` lists the dialogs of every channel, the one with the
latest incoming message first (its ``search_after`` is "the id of last_inbox_message"). A
message or a new contact since the cursor moved its dialog above the cursor, so reading down to
the first dialog older than the cursor finds every one of them; a quiet account costs one
request. That order is an assumption the files cannot settle, so it is checked on every row:
a dialog more recent than the one before it fails the poll instead of ending it early.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import structlog

from connector.http_client.api_errors import UnexpectedResponse
from connector.plugins import ApiClient, Item, PluginParams
from connector.providers.chatbots_api import Channel, ChannelName, channel_of, dialogs
from triggers.sendpulse._dates import epoch_or_none

log = structlog.get_logger(__name__)


class BotParams(PluginParams):
    """Optionally, only one bot's (by id) or one channel's dialogs."""

    bot_id: str | None = None
    channel: ChannelName | None = None


def activity_of(dialog: Item) -> float | None:
    """When the dialog last had an incoming message (its creation if it has none yet)."""
    inbox = dialog.get("last_inbox_message")
    when = inbox.get("date") if isinstance(inbox, dict) else None
    return epoch_or_none(when or dialog.get("created_at"))


async def recent_dialogs(
    client: ApiClient, since: float | None, params: BotParams
) -> AsyncIterator[tuple[Item, Channel]]:
    """Dialogs (with their channel) active at or after ``since``; all of them when None."""
    previous: float | None = None
    async for row in dialogs(client):
        position = activity_of(row)
        if position is not None and previous is not None and position > previous:
            raise UnexpectedResponse(
                "/chatbots/dialogs?order=desc is not ordered by the latest incoming message"
            )
        if position is not None:
            previous = position
        if since is not None and position is not None and position < since:
            return
        channel = channel_of(row)
        if channel is None:
            log.warning("chatbot_service_skipped", service=row.get("service"))
            continue
        if params.bot_id and row.get("bot_id") != params.bot_id:
            continue
        if params.channel and channel.name != params.channel:
            continue
        yield row, channel
