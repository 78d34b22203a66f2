"""What the mailing-list subscriber triggers share: params, paging and the payload.

SendPulse gives a subscriber no id and no date, and ``GET /addressbooks/{id}/emails`` has no
"since" filter, so these triggers page the list and let the engine diff it against the last
snapshot. The count from ``/emails/total`` is not used as a shortcut: it stays equal when one
subscriber leaves and another joins, which would hide both changes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any, ClassVar
from urllib.parse import quote

from pydantic import PositiveInt, field_validator

from connector.plugins import ApiClient, Gone, Item, PluginParams, Trigger, WebhookChange
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
ACTIVE = STATUSES["active"]
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

    # The email-service webhooks about a list's members. Every flow over a list's
    # subscribers keeps a snapshot of it, so each takes every one of them, as its own poll
    # would: a delete drops the email from the snapshot of ``subscriber_added`` too, so that
    # joining again is a new event.
    webhook_actions: ClassVar[frozenset[str]] = frozenset({"new_emails", "delete", "unsubscribe"})

    async def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Every subscriber of the list (or only the inactive ones), page by page."""
        async for _key, item in self._rows(client):
            yield item

    def keyed(self, client: ApiClient, since: float | None) -> AsyncIterator[tuple[str, Item]]:
        """The list's subscribers with the keys the paging computes anyway."""
        if type(self).poll is not SubscriberTrigger.poll:
            # A subclass that reads its rows its own way: the keys are those rows' keys.
            return super().keyed(client, since)
        return self._rows(client)

    def _rows(self, client: ApiClient) -> AsyncIterator[tuple[str, Item]]:
        params = {"not_active": 1} if self.inactive_only else None
        return anchored_pages(client, self.path, self.key_of, params)

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

    def webhook_takes(self, change: WebhookChange) -> bool:
        return change.action in self.webhook_actions and change.book_id == self.list_id

    def webhook_lookup(self, change: WebhookChange) -> str | None:
        # A webhook carries only the email, the list and the variables, while a polled
        # subscriber has a status, its explanation and a phone too: the event is built from
        # the subscriber as the API has it now. A delete carries nothing else to read.
        if change.action == "delete":
            return None
        return f"{self.path}/{quote(change.email, safe='@')}"

    def webhook_item(self, change: WebhookChange, found: Any) -> Item | Gone | None:
        if change.action == "delete":
            return Gone(self.key_of({"email": change.email}))
        item = subscriber_answer(found, change.email)
        if item is None:
            # Gone again already: the next poll sees the list as it is.
            return None
        if self.inactive_only and item.get("status") == ACTIVE:
            # This flow pages only the inactive subscribers (not_active=1), so it stops
            # seeing one who is active: for its snapshot that is a removal.
            return Gone(self.key_of(item))
        return item


def subscriber_answer(data: Any, email: str) -> Item | None:
    """``GET /addressbooks/{id}/emails/{email}``'s answer in the shape the list call gives a
    subscriber (email, status, status_explain, phone, variables); None if it is none."""
    if isinstance(data, list):  # SendPulse wraps some single objects in a list
        data = data[0] if data else None
    if not isinstance(data, dict):
        return None
    raw = data.get("variables") or {}
    # The single-subscriber call lists variables as {name, type, value}; the list call,
    # which the poll reads, as a plain object.
    variables = (
        {str(v.get("name")): v.get("value") for v in raw if isinstance(v, dict)}
        if isinstance(raw, list)
        else dict(raw)
        if isinstance(raw, dict)
        else {}
    )
    return {
        "email": str(data.get("email") or email),
        "status": data.get("status"),
        "status_explain": data.get("status_explain"),
        "phone": data.get("phone"),
        "variables": variables,
    }
