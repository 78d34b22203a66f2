"""``sendpulse.crm_contact_updated``: a CRM contact was changed.

The contacts list cannot sort by update time (``sortBy.fieldName`` is one of id, created_at,
first_name, attributeId, responsible_id), but it filters on it: ``updateFrom`` takes a date.
Each poll asks for the contacts updated since the day before the cursor's day (so an account
in any time zone is covered), in id order (offsets stay put while contacts change), and the
engine keeps those updated at or after the cursor, exactly. Each update is its own event (the
item is the contact id with its update time); a contact that was only created, never changed,
is not an update. A row updated before the asked-for day means the filter was not applied:
the poll fails rather than taking the whole list for updates.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar

from connector.http_client.api_errors import UnexpectedResponse
from connector.plugins import ApiClient, Item, NoParams, Strategy, Trigger
from triggers.sendpulse._crm import CONTACT_FIELDS, CONTACTS, get_list, pick
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime

# How far before the cursor's UTC day the filter starts: a day covers any account zone.
ZONE_MARGIN = timedelta(days=1)


def update_from(since: float) -> datetime:
    """The first moment of the day ``updateFrom`` names for a cursor at ``since``."""
    day = (datetime.fromtimestamp(since, UTC) - ZONE_MARGIN).date()
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


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
        "POST /crm/v1/contacts/get-list updateFrom=<the day before the cursor's day> "
        "sortBy id asc (limit 100, pages)",
    )

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Contacts updated since the day before the cursor's, in id order."""
        body: dict[str, Any] = {"sortBy": {"fieldName": "id", "direction": "asc"}}
        floor = None
        if since is not None:
            start = update_from(since)
            body["updateFrom"] = start.strftime("%Y-%m-%d")
            floor = start.timestamp()
        async for item in get_list(client, CONTACTS, body):
            updated = epoch_or_none(item.get("updatedAt"))
            if (
                floor is not None
                and updated is not None
                and updated < floor - ZONE_MARGIN.total_seconds()
            ):
                raise UnexpectedResponse(
                    f"{CONTACTS}: a contact updated before updateFrom {body['updateFrom']} "
                    "came back; the filter was not applied"
                )
            if since is None or updated is None or updated >= since:
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
