"""``sendpulse.push_subscriber_added``: a browser subscribed to a website's web push.

The subscriptions list filters on the subscription day (``subscription_date_from``), so each
poll reads only the days from the cursor's on and the engine drops the ids already seen.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any, ClassVar

from pydantic import PositiveInt

from connector.plugins import ApiClient, Item, PluginParams, Strategy, Trigger
from triggers.sendpulse._dates import epoch, parse_datetime


class PushParams(PluginParams):
    """The website whose subscribers to watch."""

    website_id: PositiveInt


class PushSubscriberAdded(Trigger):
    """A push subscription dated after the last poll's cursor."""

    key: ClassVar[str] = "sendpulse.push_subscriber_added"
    Params = PushParams
    params: PushParams
    scope: ClassVar[str] = "push"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 300.0
    payload_fields = frozenset(
        {
            "id",
            "website_id",
            "browser",
            "lang",
            "os",
            "country_code",
            "city",
            "variables",
            "subscription_date",
            "status",
        }
    )
    summary = "a browser subscribed to web push"
    api_calls = (
        "GET /push/websites/{id}/subscriptions?subscription_date_from=<cursor day> "
        "(limit 100, pages)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """The website's subscriptions from the cursor's day on."""
        params = {}
        if since is not None:
            day = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d")
            params["subscription_date_from"] = day
        path = f"/push/websites/{self.params.website_id}/subscriptions"
        async for item in client.iter_offset(path, params=params):
            yield item

    def position_of(self, item: Item) -> float:
        return epoch(item.get("subscription_date"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        payload = {name: item.get(name) for name in sorted(self.payload_fields)}
        payload["website_id"] = self.params.website_id
        return payload

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("subscription_date"))
