"""``sendpulse.crm_deal_created``: a new CRM deal.

The deals list filters on the id (``id gt <cursor>``), a true cursor: a quiet poll is one
request with an empty answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from pydantic import PositiveInt

from connector.plugins import ApiClient, Item, PluginParams, Strategy, Trigger
from triggers.sendpulse._crm import DEAL_FIELDS, DEALS, get_list, pick
from triggers.sendpulse._dates import parse_datetime


class DealParams(PluginParams):
    """Optionally, only the deals of one pipeline."""

    pipeline_id: PositiveInt | None = None


def pipeline_filter(params: DealParams) -> list[dict[str, Any]]:
    if params.pipeline_id is None:
        return []
    return [{"name": "pipelineId", "expression": "eq", "value": params.pipeline_id}]


class CrmDealCreated(Trigger):
    """A deal whose id is above the highest seen at the last poll."""

    key: ClassVar[str] = "sendpulse.crm_deal_created"
    Params = DealParams
    params: DealParams
    scope: ClassVar[str] = "crm"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    payload_fields = DEAL_FIELDS
    summary = "a CRM deal was created"
    api_calls = ("POST /crm/v1/deals/get-list filter id gt <cursor> (limit 100, pages)",)

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Only the deals above the cursor, oldest first."""
        filters = pipeline_filter(self.params)
        if since is not None:
            filters.append({"name": "id", "expression": "gt", "value": int(since)})
        body = {"filter": filters, "sortBy": {"fieldName": "id", "direction": "asc"}}
        async for item in get_list(client, DEALS, body):
            yield item

    def position_of(self, item: Item) -> float:
        return float(item["id"])

    def payload_of(self, item: Item) -> dict[str, Any]:
        return pick(item, DEAL_FIELDS)

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("createdAt"))
