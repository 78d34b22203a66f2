"""``sendpulse.crm_contact_updated``: a CRM contact was changed.

The cursor is the contact's ``updatedAt``; each poll asks for contacts updated since the
cursor's day (``updateFrom``), newest update first, and stops at the first page that reaches
the cursor. Each update is its own event (the item is the contact id with its update time);
a contact that was only created, never changed, is not an update.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._crm import CONTACT_FIELDS, CONTACTS, get_list, pick
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime


class CrmContactUpdated(Trigger):
    """A contact whose ``updatedAt`` moved past the last poll's cursor."""

    key: ClassVar[str] = "sendpulse.crm_contact_updated"
    Params = NoParams
    scope: ClassVar[str] = "crm"
    strategy: ClassVar[Strategy] = "watermark"
    item_key: ClassVar[str] = "id"
    time_ordered: ClassVar[bool] = True
    overlap: ClassVar[float] = 300.0
    payload_fields = CONTACT_FIELDS
    summary = "a CRM contact was updated"
    api_calls = (
        "POST /crm/v1/contacts/get-list updateFrom=<cursor day> sortBy updated_at desc "
        "(limit 100, until a page reaches the cursor)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Contacts updated since the cursor's day, newest update first."""
        body: dict[str, Any] = {"sortBy": {"fieldName": "updated_at", "direction": "desc"}}
        if since is not None:
            body["updateFrom"] = datetime.fromtimestamp(since, UTC).strftime("%Y-%m-%d")

        def reached(rows: list[Item]) -> bool:
            dated = [epoch_or_none(r.get("updatedAt")) for r in rows]
            known = [d for d in dated if d is not None]
            return since is not None and bool(known) and min(known) < since

        async for item in get_list(client, CONTACTS, body, stop=reached):
            yield item

    def key_of(self, item: Item) -> str:
        return f"{item['id']}|{item.get('updatedAt')}"

    def position_of(self, item: Item) -> float:
        return epoch(item.get("updatedAt"))

    def payload_of(self, item: Item) -> dict[str, Any]:
        return pick(item, CONTACT_FIELDS)

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        return payload.get("updatedAt") != payload.get("createdAt")

    def occurred_at(self, item: Item) -> datetime | None:
        return parse_datetime(item.get("updatedAt"))
