"""``sendpulse.smtp_email_bounced``: a transactional email bounced.

Bounces come per day (``GET /smtp/bounces/day?date=``) with no id; an item is the recipient
and the send date. Each poll reads the days from the cursor's to today, and the answer's
``total`` ends the paging without an empty last call.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._dates import days_between, epoch, parse_datetime
from triggers.sendpulse._paging import rows_of

PAGE = 100


class SmtpEmailBounced(Trigger):
    """A bounce in the per-day list that no earlier poll saw."""

    key: ClassVar[str] = "sendpulse.smtp_email_bounced"
    Params = NoParams
    scope: ClassVar[str] = "smtp"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "email_to"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 600.0
    payload_fields = frozenset(
        {
            "email_to",
            "sender",
            "send_date",
            "subject",
            "smtp_answer_code",
            "smtp_answer_subcode",
            "smtp_answer_data",
        }
    )
    summary = "a transactional (SMTP) email bounced"
    api_calls = ("GET /smtp/bounces/day?date=<each day from the cursor's to today> (pages)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Each day's bounces, from the cursor's day to today."""
        for day in days_between(since, self.started):
            offset = 0
            while True:
                answer = await client.request(
                    "GET",
                    "/smtp/bounces/day",
                    params={"date": day, "limit": PAGE, "offset": offset},
                )
                rows = rows_of(
                    answer.get("emails") if isinstance(answer, dict) else answer,
                    f"/smtp/bounces/day {day}",
                )
                for row in rows:
                    yield row
                offset += len(rows)
                total = answer.get("total") if isinstance(answer, dict) else None
                if len(rows) < PAGE or (isinstance(total, int) and offset >= total):
                    break

    def key_of(self, item: Item) -> str:
        return f"{str(item.get('email_to', '')).lower()}|{item.get('send_date')}"

    def position_of(self, item: Item) -> float:
        return epoch(item.get("send_date"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("send_date"))
