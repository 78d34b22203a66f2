"""Email campaigns and senders: statuses that move along with the sandbox clock."""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

# Campaign statuses, as SendPulse numbers them.
NEW, SENDING, SENT, TEST, DRAFT = 0, 2, 3, 4, 26
STATUS_WEBHOOK = {NEW: "new", SENDING: "sending", SENT: "sent", TEST: "test", DRAFT: "draft"}
STATISTICS = ("sent", "delivered", "opening", "link_redirected", "unsubscribe", "error")
FREE_MAIL = frozenset(
    {"gmail.com", "yahoo.com", "hotmail.com", "outlook.com", "mail.ru", "yandex.ru", "aol.com"}
)


@dataclass
class Campaign:
    """One campaign; `status` is materialised by `Campaigns.tick`."""

    id: int
    name: str
    sender_name: str
    sender_email: str
    subject: str
    body: str
    template_id: int | None
    list_ids: list[int]
    created: float
    send_date: float | None
    recipients: int  # active subscribers of its lists when it was created
    is_test: bool = False
    draft: bool = False
    status: int = NEW
    attachments: dict[str, Any] = field(default_factory=dict)

    @property
    def start(self) -> float:
        return self.created if self.send_date is None else max(self.created, self.send_date)

    def status_at(self, now: float, review: float, sending: float) -> int:
        if self.draft:
            return DRAFT
        if self.is_test:
            return TEST if now >= self.start else NEW
        if now < self.start + review:
            return NEW
        if now < self.start + review + sending:
            return SENDING
        return SENT

    def statistics(self) -> dict[str, int]:
        """Stable, plausible figures derived from the id: they exist once sending starts."""
        if self.status not in (SENDING, SENT):
            return dict.fromkeys(STATISTICS, 0)
        sent = self.recipients
        salt = zlib.crc32(f"campaign-{self.id}".encode())
        errors = sent * (salt % 3) // 100
        delivered = sent - errors
        opened = delivered * (30 + salt % 20) // 100
        return {
            "sent": sent,
            "delivered": delivered,
            "opening": opened,
            "link_redirected": opened * (10 + salt % 15) // 100,
            "unsubscribe": delivered * (salt % 2) // 100,
            "error": errors,
        }


@dataclass
class Sender:
    """A sender address; only active ones may send."""

    email: str
    name: str
    active: bool
    code: str
    code_sent: float

    def json(self) -> dict[str, Any]:
        status = "Active" if self.active else "Not active"
        return {"name": self.name, "email": self.email, "status": status}


class Campaigns:
    """All campaigns and senders of the account."""

    def __init__(self) -> None:
        self.items: dict[int, Campaign] = {}
        self.next_id = 1
        self.senders: dict[str, Sender] = {}

    def add(self, **fields: Any) -> Campaign:
        campaign = Campaign(id=self.next_id, **fields)
        self.items[campaign.id] = campaign
        self.next_id += 1
        return campaign

    def tick(self, now: float, review: float, sending: float) -> list[Campaign]:
        """Move statuses on to `now`; returns the campaigns whose status changed."""
        moved = []
        for campaign in self.items.values():
            status = campaign.status_at(now, review, sending)
            if status != campaign.status:
                campaign.status = status
                moved.append(campaign)
        return moved

    def created_since(self, since: float) -> int:
        return sum(1 for c in self.items.values() if c.created > since and not c.draft)

    def add_sender(self, email: str, name: str, now: float, *, active: bool = True) -> Sender:
        code = f"{zlib.crc32(email.lower().encode()) % 1_000_000:06d}"
        sender = Sender(email.lower(), name, active, code, now)
        self.senders[sender.email] = sender
        return sender
