"""``sendpulse.smtp_email_sent``: a transactional email was sent.

SMTP message ids are not ordered, so the cursor is the send date. ``from`` takes a date, not
a time (``YYYY-MM-DD``), so each poll asks for the days from the one before the cursor's (a
day covers any account time zone) and drops the rows sent before the cursor (less an overlap
for late rows) itself; the engine drops the ids already seen in that window, so the cursor
stays exact. ``sender`` and ``recipient`` go to the API as filters, so only matching messages
are fetched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from pydantic import Field

from connector.plugins import ApiClient, Item, PluginParams, Strategy, Trigger
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime

PAGE = 100
# How far before the cursor's UTC day ``from`` starts: a day covers any account zone.
ZONE_MARGIN = timedelta(days=1)
EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


class SmtpParams(PluginParams):
    """Optional filters, applied by the API."""

    sender: str | None = Field(default=None, pattern=EMAIL)
    recipient: str | None = Field(default=None, pattern=EMAIL)


class SmtpEmailSent(Trigger):
    """A message in the SMTP sent list that no earlier poll saw."""

    key: ClassVar[str] = "sendpulse.smtp_email_sent"
    Params = SmtpParams
    params: SmtpParams
    scope: ClassVar[str] = "smtp"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    # Rows may show up in the list a little after their send date.
    overlap: ClassVar[float] = 600.0
    payload_fields = frozenset(
        {
            "id",
            "sender",
            "recipient",
            "subject",
            "send_date",
            "smtp_answer_code",
            "smtp_answer_code_explain",
            "smtp_answer_data",
            "total_size",
            "tracking",
        }
    )
    summary = "a transactional (SMTP) email was sent"
    api_calls = (
        "GET /smtp/emails?from=<the day before the cursor's day>&sender&recipient "
        "(limit 100, pages)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The sent list from ``since`` on, filtered by sender and recipient."""
        params: dict[str, Any] = {}
        if since is not None:
            day = datetime.fromtimestamp(since, UTC) - ZONE_MARGIN
            params["from"] = day.strftime("%Y-%m-%d")
        if self.params.sender:
            params["sender"] = str(self.params.sender)
        if self.params.recipient:
            params["recipient"] = str(self.params.recipient)
        async for item in client.iter_offset("/smtp/emails", params=params, limit=PAGE):
            sent = epoch_or_none(item.get("send_date"))
            if since is None or sent is None or sent >= since:
                yield item

    def position_of(self, item: Item) -> float:
        return epoch(item.get("send_date"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("send_date"))
