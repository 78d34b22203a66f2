"""What the chatbot triggers share: the dialogs list, newest activity first.

``GET /chatbots/dialogs`` orders dialogs by last activity and pages with a ``search_after``
cursor (reference §6). Anything that happened since the cursor (a message, a new contact)
moved its dialog's activity past it, so reading newest first and stopping at the first dialog
older than the cursor finds every one of them; a quiet account costs one request.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from connector.plugins import ApiClient, Item, PluginParams
from triggers.sendpulse._dates import epoch_or_none
from triggers.sendpulse._paging import rows_of

PAGE = 100
CHANNELS = ("telegram", "whatsapp", "instagram", "messenger", "viber", "livechat", "tiktok")


class BotParams(PluginParams):
    """Optionally, only one bot's (by id) or one channel's dialogs."""

    bot_id: str | None = None
    channel: str | None = None


def unwrap(answer: Any) -> Any:
    """Chatbot replies are ``{success, data}``."""
    return answer.get("data") if isinstance(answer, dict) and "data" in answer else answer


async def recent_dialogs(
    client: ApiClient, since: float | None, params: BotParams
) -> AsyncIterator[Item]:
    """Dialogs whose last activity is at or after ``since`` (all of them when None)."""
    cursor: Any = None
    while True:
        query: dict[str, Any] = {"size": PAGE, "order": "desc"}
        if cursor is not None:
            query["search_after"] = cursor
        data = unwrap(await client.request("GET", "/chatbots/dialogs", params=query))
        rows = data.get("list") if isinstance(data, dict) else None
        rows = rows_of(rows, "/chatbots/dialogs")
        for row in rows:
            if _older(row.get("last_activity_at"), since):
                return
            if params.bot_id and row.get("bot_id") != params.bot_id:
                continue
            if params.channel and row.get("channel") != params.channel:
                continue
            yield row
        next_cursor = data.get("search_after") if isinstance(data, dict) else None
        if len(rows) < PAGE or next_cursor in (None, "", cursor):
            return
        cursor = next_cursor


def _older(value: Any, since: float | None) -> bool:
    """Dated before ``since`` (a row with no date is never taken for an old one)."""
    position = epoch_or_none(value)
    return since is not None and position is not None and position < since
