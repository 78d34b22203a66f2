"""``sendpulse.smtp_email_sent``: a transactional email was sent.

SMTP message ids are not ordered, so the cursor is the send date: each poll asks
``GET /smtp/emails`` for the window from the cursor (less an overlap for late rows) and the
engine drops the ids already seen in that window. ``sender`` and ``recipient`` go to the API
as filters, so only matching messages are fetched.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from pydantic import Field

from connector.plugins import ApiClient, Item, PluginParams, Strategy, Trigger
from triggers.sendpulse._dates import epoch, fmt_datetime, parse_datetime

PAGE = 100
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
    api_calls = ("GET /smtp/emails?from=<cursor - 10 min>&sender&recipient (limit 100, pages)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The sent list from ``since`` on, filtered by sender and recipient."""
        params: dict[str, Any] = {}
        if since is not None:
            params["from"] = fmt_datetime(since)
        if self.params.sender:
            params["sender"] = str(self.params.sender)
        if self.params.recipient:
            params["recipient"] = str(self.params.recipient)
        async for item in client.iter_offset("/smtp/emails", params=params, limit=PAGE):
            yield item

    def position_of(self, item: Item) -> float:
        return epoch(item.get("send_date"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("send_date"))
