"""``sendpulse.campaign_status_changed``: a campaign's status changed (optionally ``to:``).

Each poll pages ``GET /campaigns`` and compares every campaign's status with the last poll's.
With ``to: sent``, the event carries the campaign with its statistics, which one
``GET /campaigns/{id}`` per sent campaign fetches (only for the campaigns that changed).
A campaign created and already in the ``to:`` status by the next poll counts as a change too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

from pydantic import field_validator

from connector.plugins import ApiClient, Item, PluginParams, SnapshotChange, Strategy, Trigger
from triggers.sendpulse._campaigns import CAMPAIGN_FIELDS, SENT, campaign_payload, campaign_status


class CampaignStatusParams(PluginParams):
    """Optionally, the one status a change must end in (a number or a name)."""

    to: int | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> int | None:
        return None if value is None else campaign_status(value)


class CampaignStatusChanged(Trigger):
    """A campaign whose status differs from the last poll's."""

    key: ClassVar[str] = "sendpulse.campaign_status_changed"
    Params = CampaignStatusParams
    params: CampaignStatusParams
    scope: ClassVar[str] = "emails"
    strategy: ClassVar[Strategy] = "fingerprint"
    item_key: ClassVar[str] = "id"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed", "added"})
    enriches: ClassVar[bool] = True
    # Offset paging can miss a campaign for one poll. Forgotten, it would come back as
    # "added" and its status change would be lost (or, already in ``to``, announced twice);
    # kept, it comes back as "changed" from the status it had. Campaign ids are never reused.
    keeps_removed: ClassVar[bool] = True
    # SendPulse's webhook that a campaign's status moved says too little to make the event
    # from: it makes the flow poll now instead.
    webhook_polls: ClassVar[frozenset[str]] = frozenset({"task_status_update"})
    # Campaign ids grow: start: all takes the newest campaigns.
    first_run_order: ClassVar[str | None] = "id"
    payload_fields = CAMPAIGN_FIELDS | {"previous_status", "send_date", "statistics"}
    summary = "an email campaign's status changed"
    api_calls = (
        "GET /campaigns (limit 100, every page)",
        "GET /campaigns/{id} per campaign that became sent",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Every campaign, page by page."""
        async for item in client.iter_offset("/campaigns"):
            yield item

    def fingerprint_of(self, item: Item) -> str:
        return str(item.get("status"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return campaign_payload(item)

    def changed_payload(self, payload: dict[str, Any], previous: str | None) -> dict[str, Any]:
        before: Any = int(previous) if previous and previous.isdigit() else previous
        return {**payload, "previous_status": before}

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        if kind == "added":
            # New campaigns are not status changes, unless they already reached ``to``.
            return self.params.to is not None and payload.get("status") == self.params.to
        return self.params.to is None or payload.get("status") == self.params.to

    async def enrich(
        self, client: ApiClient, kind: SnapshotChange, payload: dict[str, Any]
    ) -> dict[str, Any]:
        if payload.get("status") != SENT:
            return payload
        full = await client.request("GET", f"/campaigns/{payload['id']}")
        if not isinstance(full, dict):
            return payload
        return {
            **payload,
            "previous_status": payload.get("previous_status"),
            "send_date": full.get("send_date"),
            "statistics": full.get("statistics"),
        }
