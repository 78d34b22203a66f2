"""``sendpulse.crm_contact_created``: a new CRM contact."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._crm import CONTACT_FIELDS, CONTACTS, get_list, pick
from triggers.sendpulse._dates import parse_datetime


class CrmContactCreated(Trigger):
    """A contact whose id is above the highest seen at the last poll."""

    key: ClassVar[str] = "sendpulse.crm_contact_created"
    Params = NoParams
    scope: ClassVar[str] = "crm"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    payload_fields = CONTACT_FIELDS
    summary = "a CRM contact was created"
    api_calls = (
        "POST /crm/v1/contacts/get-list sortBy id desc "
        "(limit 100, until a page reaches the cursor)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Newest first, stopping once a page reaches ``since``."""
        body = {"sortBy": {"fieldName": "id", "direction": "desc"}}

        def reached(rows: list[Item]) -> bool:
            return since is not None and min(float(r["id"]) for r in rows) <= since

        async for item in get_list(client, CONTACTS, body, stop=reached):
            yield item

    def position_of(self, item: Item) -> float:
        return float(item["id"])

    def payload_of(self, item: Item) -> dict[str, Any]:
        return pick(item, CONTACT_FIELDS)

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("createdAt"))
