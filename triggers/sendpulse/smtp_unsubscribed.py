"""``sendpulse.smtp_unsubscribed``: an address unsubscribed from transactional email.

The SMTP unsubscribe list is read a day at a time (``GET /smtp/unsubscribe?date=``), from the
cursor's day to today; an item is the address and the date it unsubscribed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._dates import days_between, epoch, parse_datetime

PAGE = 100


class SmtpUnsubscribed(Trigger):
    """An entry of the SMTP unsubscribe list that no earlier poll saw."""

    key: ClassVar[str] = "sendpulse.smtp_unsubscribed"
    Params = NoParams
    scope: ClassVar[str] = "smtp"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "email"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 600.0
    payload_fields = frozenset(
        {"email", "date", "unsubscribe_by_link", "unsubscribe_by_user", "spam_complaint"}
    )
    summary = "an address unsubscribed from transactional email"
    api_calls = ("GET /smtp/unsubscribe?date=<each day from the cursor's to today> (pages)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Each day's unsubscribes, from the cursor's day to today."""
        for day in days_between(since, self.started):
            async for item in client.iter_offset(
                "/smtp/unsubscribe", params={"date": day}, limit=PAGE
            ):
                yield item

    def key_of(self, item: Item) -> str:
        return f"{str(item.get('email', '')).lower()}|{item.get('date')}"

    def position_of(self, item: Item) -> float:
        return epoch(item.get("date"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("date"))
