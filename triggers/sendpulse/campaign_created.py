"""``sendpulse.campaign_created``: a new email campaign.

Campaign ids grow, and ``GET /campaigns`` takes ``order=desc``: the poll reads newest first
and stops at the first page that reaches the watermark, so a quiet account costs one request
however many campaigns it holds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._campaigns import CAMPAIGN_FIELDS, campaign_payload
from triggers.sendpulse._paging import rows_of

PAGE = 100


class CampaignCreated(Trigger):
    """A campaign whose id is above the highest seen at the last poll."""

    key: ClassVar[str] = "sendpulse.campaign_created"
    Params = NoParams
    scope: ClassVar[str] = "emails"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    payload_fields = CAMPAIGN_FIELDS
    summary = "an email campaign was created"
    api_calls = ("GET /campaigns?order=desc (limit 100, until a page reaches the cursor)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Newest first, stopping once a page reaches ``since``."""
        offset = 0
        while True:
            page = await client.request(
                "GET", "/campaigns", params={"order": "desc", "limit": PAGE, "offset": offset}
            )
            items = rows_of(page, "/campaigns")
            for item in items:
                yield item
            if len(items) < PAGE:
                return
            if since is not None and min(float(i["id"]) for i in items) <= since:
                return
            offset += len(items)

    def position_of(self, item: Item) -> float:
        return float(item["id"])

    def payload_of(self, item: Item) -> dict[str, Any]:
        return campaign_payload(item)
