"""The sandbox's whole in-memory world, and the methods tests call to change it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from connector.sandbox.books import ACTIVE, UNSUBSCRIBED, UNSUBSCRIBED_ALL, Book, Subscriber
from connector.sandbox.campaigns import SENDING, STATUS_WEBHOOK, Campaign, Campaigns
from connector.sandbox.channels import Autoresponder, Channels, PushSubscription, PushWebsite
from connector.sandbox.chatbots import Chatbots
from connector.sandbox.clock import Clock, fmt_datetime
from connector.sandbox.credentials import Auth
from connector.sandbox.crm import Crm
from connector.sandbox.faults import Faults
from connector.sandbox.limits import Limits
from connector.sandbox.smtp import Smtp
from connector.sandbox.webhooks import WebhookHub

if TYPE_CHECKING:
    from connector.sandbox.generator import Generator


@dataclass
class Settings:
    """The knobs; all of them can be changed while the sandbox runs."""

    rate_limit: float | None = 10.0
    per_minute: int | None = None
    token_ttl: float = 3600.0
    market_token_ttl: float = 3600.0
    latency: float = 0.0
    jitter: float = 0.0
    webhook_interval: float = 60.0
    webhook_batch: int = 100
    campaign_review_seconds: float = 60.0
    campaign_send_seconds: float = 300.0
    campaigns_per_hour: int = 4
    subscriber_quota: int | None = None
    # SMTP sends answer the documented transient 422 ("currently limited") while set.
    smtp_sending_limited: bool = False


class State:
    """Everything the sandbox knows; handlers and tests go through its methods."""

    def __init__(self, clock: Clock | None = None, settings: Settings | None = None) -> None:
        self.clock = clock or Clock()
        self.settings = settings or Settings()
        self.auth = Auth()
        self.limits = Limits(self.settings.rate_limit, self.settings.per_minute)
        self.faults = Faults()
        self.books: dict[int, Book] = {}
        self._next_book = 1
        self.blacklist: dict[str, str] = {}  # email -> comment, in insertion order
        self.campaigns = Campaigns()
        self.smtp = Smtp()
        self.channels = Channels()
        self.crm = Crm()
        self.chatbots = Chatbots()
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        self.tick_hooks: list[Callable[[], None]] = []
        self.clock.on_advance(self.tick)
        self.webhooks = WebhookHub(self)
        self.generator: Generator | None = None

    def now(self) -> float:
        return self.clock.now()

    def emit(self, event: dict[str, Any]) -> None:
        """Hand one webhook-worthy event to whoever listens (the webhook hub)."""
        for listener in self.listeners:
            listener(event)

    def tick(self) -> None:
        """Move time-driven things (campaign statuses) to the clock's now, firing webhooks."""
        settings = self.settings
        moved = self.campaigns.tick(
            self.now(), settings.campaign_review_seconds, settings.campaign_send_seconds
        )
        for campaign in moved:
            self.emit(
                {
                    "event": "task_status_update",
                    "task_id": campaign.id,
                    "book_id": campaign.list_ids[0] if campaign.list_ids else None,
                    "status": STATUS_WEBHOOK.get(campaign.status, str(campaign.status)),
                    "status_explain": STATUS_WEBHOOK.get(campaign.status, ""),
                    "timestamp": str(int(self.now())),
                }
            )
        for hook in self.tick_hooks:
            hook()

    def configure(self, **changes: Any) -> None:
        for name, value in changes.items():
            if not hasattr(self.settings, name):
                raise ValueError(f"unknown setting {name!r}")
            setattr(self.settings, name, value)
        self.limits.rate_limit = self.settings.rate_limit
        self.limits.per_minute = self.settings.per_minute

    # -- mailing lists -------------------------------------------------------------------
    def add_book(self, name: str, *, created: float | None = None) -> Book:
        book = Book(self._next_book, name, self.now() if created is None else created)
        self.books[book.id] = book
        self._next_book += 1
        return book

    def book_by_name(self, name: str) -> Book | None:
        for book in self.books.values():
            if book.name == name:
                return book
        return None

    def subscriber_count(self) -> int:
        return sum(len(book) for book in self.books.values())

    def book_in_active_campaign(self, book_id: int) -> bool:
        self.tick()
        return any(
            c.status == SENDING and book_id in c.list_ids for c in self.campaigns.items.values()
        )

    def delete_book(self, book_id: int) -> None:
        del self.books[book_id]

    def add_subscriber(
        self,
        book_id: int,
        email: str,
        variables: dict[str, Any] | None = None,
        *,
        status: int = ACTIVE,
        update: bool = True,
        phone: str | None = None,
        source: str = "api",
        webhook: bool = True,
    ) -> tuple[Subscriber, bool]:
        """Add (or update) one email; a new row fires a `new_emails` webhook event."""
        book = self.books[book_id]
        row, created = book.upsert(
            email,
            variables or {},
            self.now(),
            status=status,
            update=update,
            phone=phone,
            source=source,
        )
        if created and webhook:
            self.emit(
                {
                    "event": "new_emails",
                    "email": row.email,
                    "book_id": str(book_id),
                    "variables": dict(row.variables),
                    "source": source,
                    "timestamp": str(int(self.now())),
                }
            )
        return row, created

    def unsubscribe(self, book_id: int, email: str, *, reason: str = "api") -> Subscriber | None:
        row = self.books[book_id].set_status(email, UNSUBSCRIBED)
        if row is not None:
            self.emit(
                {
                    "event": "unsubscribe",
                    "email": row.email,
                    "book_id": str(book_id),
                    "task_id": None,
                    "from_all": False,
                    "reason": reason,
                    "categories": [],
                    "timestamp": str(int(self.now())),
                }
            )
        return row

    def set_status(self, book_id: int, email: str, status: int) -> Subscriber | None:
        return self.books[book_id].set_status(email, status)

    def set_variables(self, book_id: int, email: str, variables: dict[str, Any]) -> Subscriber:
        book = self.books[book_id]
        row = book.get(email)
        if row is None:
            raise KeyError(email)
        book.register_variables(variables)
        row.variables = {**row.variables, **variables}
        return row

    def remove_subscriber(self, book_id: int, email: str) -> Subscriber | None:
        row = self.books[book_id].remove(email)
        if row is not None:
            self.emit(
                {
                    "event": "delete",
                    "email": row.email,
                    "book_id": str(book_id),
                    "timestamp": str(int(self.now())),
                }
            )
        return row

    def remove_everywhere(self, email: str) -> int:
        return sum(1 for book_id in list(self.books) if self.remove_subscriber(book_id, email))

    def unsubscribe_everywhere(self, email: str) -> int:
        count = 0
        for book in self.books.values():
            if book.set_status(email, UNSUBSCRIBED_ALL) is not None:
                count += 1
        return count

    # -- campaigns and senders -----------------------------------------------------------
    def add_sender(self, email: str, name: str = "Sandbox", *, active: bool = True) -> None:
        self.campaigns.add_sender(email, name, self.now(), active=active)

    def create_campaign(
        self,
        list_ids: list[int],
        *,
        subject: str = "Hello",
        sender_email: str = "sender@example.com",
        sender_name: str = "Sandbox",
        body: str = "",
        name: str | None = None,
        template_id: int | None = None,
        send_date: float | None = None,
        is_test: bool = False,
        draft: bool = False,
        created: float | None = None,
    ) -> Campaign:
        """A campaign over the active subscribers of `list_ids` (no validation: see the API)."""
        recipients = sum(self.books[book_id].total(active=True) for book_id in list_ids)
        campaign = self.campaigns.add(
            name=name or subject,
            sender_name=sender_name,
            sender_email=sender_email,
            subject=subject,
            body=body,
            template_id=template_id,
            list_ids=list(list_ids),
            created=self.now() if created is None else created,
            send_date=send_date,
            recipients=recipients,
            is_test=is_test,
            draft=draft,
        )
        self.tick()
        return campaign

    # -- web push and Automation 360 -----------------------------------------------------
    def add_push_website(self, url: str, *, added: float | None = None) -> PushWebsite:
        site = PushWebsite(self.channels.new_id(), url, self.now() if added is None else added)
        self.channels.websites[site.id] = site
        return site

    def add_push_subscription(
        self, website_id: int, *, city: str = "Berlin", subscribed: float | None = None
    ) -> PushSubscription:
        subscription = PushSubscription(
            id=self.channels.new_id(),
            website_id=website_id,
            browser="Firefox",
            lang="en",
            os="Linux",
            country_code="DE",
            city=city,
            variables=[],
            subscribed=self.now() if subscribed is None else subscribed,
        )
        self.channels.subscriptions.append(subscription)
        return subscription

    def add_autoresponder(self, name: str, *, created: float | None = None) -> Autoresponder:
        when = self.now() if created is None else created
        item = Autoresponder(self.channels.new_id(), name, 1, when, when)
        item.flows = [
            {
                "id": item.id * 10 + n,
                "main_id": item.id,
                "af_type": kind,
                "created": fmt_datetime(when),
                "last_send": None,
            }
            for n, kind in enumerate(("email", "sms"))
        ]
        self.channels.autoresponders[item.id] = item
        return item
