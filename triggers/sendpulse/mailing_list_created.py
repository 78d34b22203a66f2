"""``sendpulse.mailing_list_created``: a new mailing list (address book) appeared."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger


def parse_datetime(value: Any) -> datetime | None:
    """SendPulse's email-service format, ``YYYY-MM-DD HH:MM:SS`` in UTC, or None."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip()[:19], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    except ValueError:
        return None


class MailingListCreated(Trigger):
    """A mailing list whose id is above the highest seen at the last poll."""

    key: ClassVar[str] = "sendpulse.mailing_list_created"
    Params = NoParams
    scope: ClassVar[str] = "emails"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    payload_fields = frozenset(
        {"id", "name", "all_email_qty", "active_email_qty", "creationdate", "status"}
    )
    summary = "a mailing list was created"
    # The list has no order or date filter, but it is short (one page per 100 lists).
    api_calls = ("GET /addressbooks (limit 100, every page)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Every mailing list; the engine keeps the ones above the watermark."""
        async for item in client.iter_offset("/addressbooks"):
            yield item

    def position_of(self, item: Item) -> float:
        return float(item["id"])

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {
            "id": int(item["id"]),
            "name": item.get("name"),
            "all_email_qty": item.get("all_email_qty"),
            "active_email_qty": item.get("active_email_qty"),
            "creationdate": item.get("creationdate"),
            "status": item.get("status"),
        }

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("creationdate"))
