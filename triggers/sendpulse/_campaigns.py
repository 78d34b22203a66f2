"""What the email campaign triggers share: statuses and the payload of one campaign."""

from __future__ import annotations

from typing import Any

from connector.plugins import Item

# Campaign statuses (reference §3); names are accepted in flow files as well as numbers.
CAMPAIGN_STATUSES = {
    "new": 0,
    "pending_review": 1,
    "sending": 2,
    "sent": 3,
    "test": 4,
    "blocked": 5,
    "in_progress": 13,
    "draft": 26,
}
SENT = 3
CAMPAIGN_FIELDS = frozenset(
    {"id", "name", "subject", "sender_name", "sender_email", "list_id", "status", "all_email_qty"}
)


def campaign_status(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("a status is a number or one of: " + ", ".join(CAMPAIGN_STATUSES))
    if isinstance(value, int):
        return value
    if isinstance(value, str):
        name = value.strip().lower().replace(" ", "_")
        if name in CAMPAIGN_STATUSES:
            return CAMPAIGN_STATUSES[name]
        if name.isdigit():
            return int(name)
    known = ", ".join(CAMPAIGN_STATUSES)
    raise ValueError(f"unknown campaign status {value!r}; use a number or one of: {known}")


def campaign_payload(item: Item) -> dict[str, Any]:
    message = item.get("message") or {}
    return {
        "id": int(item["id"]),
        "name": item.get("name"),
        "subject": message.get("subject"),
        "sender_name": message.get("sender_name"),
        "sender_email": message.get("sender_email"),
        "list_id": message.get("list_id"),
        "status": item.get("status"),
        "all_email_qty": item.get("all_email_qty"),
    }
