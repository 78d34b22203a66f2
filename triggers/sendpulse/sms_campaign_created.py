"""``sendpulse.sms_campaign_created``: a new SMS campaign.

``GET /sms/campaigns/list`` filters on the creation time (``dateFrom``/``dateTo``), so each
poll asks only for the window from the cursor (less an overlap) to the poll's start.
"""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._dates import epoch, fmt_datetime, parse_datetime
from triggers.sendpulse._paging import rows_of


class SmsCampaignCreated(Trigger):
    """An SMS campaign created after the last poll's cursor."""

    key: ClassVar[str] = "sendpulse.sms_campaign_created"
    Params = NoParams
    scope: ClassVar[str] = "sms"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 300.0
    payload_fields = frozenset(
        {
            "id",
            "address_book_id",
            "company_price",
            "company_currency",
            "send_date",
            "date_created",
            "sender_mail_address",
            "sender_mail_name",
        }
    )
    summary = "an SMS campaign was created"
    api_calls = ("GET /sms/campaigns/list?dateFrom=<cursor - 5 min>&dateTo=<poll start>",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The campaigns created in the window; the list is not paged."""
        # Rounded up: the list's times are whole seconds, and a campaign created in the
        # poll's own second must not wait for the next poll.
        params = {"dateTo": fmt_datetime(math.ceil(self.started.timestamp()))}
        if since is not None:
            params["dateFrom"] = fmt_datetime(since)
        answer = await client.request("GET", "/sms/campaigns/list", params=params)
        rows = answer.get("data") if isinstance(answer, dict) else answer
        for row in rows_of(rows, "/sms/campaigns/list"):
            yield row

    def position_of(self, item: Item) -> float:
        return epoch(item.get("date_created"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {name: item.get(name) for name in sorted(self.payload_fields)}

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("date_created"))
