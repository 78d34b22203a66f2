"""What the mailing-list subscriber triggers share: params, paging and the payload.

SendPulse gives a subscriber no id and no date, and ``GET /addressbooks/{id}/emails`` has no
"since" filter, so these triggers page the list and let the engine diff it against the last
snapshot. The count from ``/emails/total`` is not used as a shortcut: it stays equal when one
subscriber leaves and another joins, which would hide both changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar

from pydantic import PositiveInt, field_validator

from connector.plugins import ApiClient, Item, PluginParams, Trigger
from triggers.sendpulse._paging import anchored_pages

# Subscriber statuses (reference §2); names are accepted in flow files as well as numbers.
STATUSES = {
    "new": 0,
    "active": 1,
    "confirmation_requested": 2,
    "activation_requested": 3,
    "unsubscribed": 4,
    "rejected": 5,
    "unsubscribed_from_all": 6,
    "blocked": 7,
}
UNSUBSCRIBED = frozenset({4, 6})
SUBSCRIBER_FIELDS = frozenset(
    {"email", "mailing_list_id", "status", "status_explain", "phone", "variables"}
)


def status_code(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a status is a number or one of: " + ", ".join(STATUSES))
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a status is not negative")
        return value
    if isinstance(value, str):
        name = value.strip().lower().replace(" ", "_")
        if name in STATUSES:
            return STATUSES[name]
        if name.isdigit():
            return int(name)
    raise ValueError(f"unknown status {value!r}; use a number or one of: {', '.join(STATUSES)}")


class ListParams(PluginParams):
    """Which mailing list to watch."""

    mailing_list_id: PositiveInt


class StatusParams(ListParams):
    """A mailing list, and optionally the one status a change must end in."""

    to: int | None = None

    @field_validator("to", mode="before")
    @classmethod
    def _to(cls, value: Any) -> int | None:
        return None if value is None else status_code(value)


class SubscriberTrigger(Trigger):
    """Base for triggers over one mailing list's subscribers, keyed by email."""

    scope: ClassVar[str] = "emails"
    item_key: ClassVar[str] = "email"
    payload_fields = SUBSCRIBER_FIELDS
    # Only the subscribers who are not active (a status filter of the list call).
    inactive_only: ClassVar[bool] = False

    params: ListParams

    @property
    def list_id(self) -> int:
        return self.params.mailing_list_id

    @property
    def path(self) -> str:
        return f"/addressbooks/{self.list_id}/emails"

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Every subscriber of the list (or only the inactive ones), page by page."""
        params = {"not_active": 1} if self.inactive_only else None
        async for item in anchored_pages(client, self.path, self.key_of, params):
            yield item

    def key_of(self, item: Item) -> str:
        # SendPulse matches emails without regard to case.
        return str(item["email"]).strip().lower()

    def payload_of(self, item: Item) -> dict[str, Any]:
        return {
            "email": str(item["email"]).strip().lower(),
            "mailing_list_id": self.list_id,
            "status": item.get("status"),
            "status_explain": item.get("status_explain"),
            "phone": item.get("phone"),
            "variables": item.get("variables") or {},
        }

    def removed_payload(self, key: str) -> dict[str, Any]:
        return {"email": key, "mailing_list_id": self.list_id}
