"""The sandbox's whole in-memory world, and the methods tests call to change it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from connector.sandbox.auth import Auth
from connector.sandbox.books import ACTIVE, UNSUBSCRIBED, UNSUBSCRIBED_ALL, Book, Subscriber
from connector.sandbox.clock import Clock
from connector.sandbox.faults import Faults
from connector.sandbox.limits import Limits


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
        self.listeners: list[Callable[[dict[str, Any]], None]] = []
        # Other stores add their demo records through these (called with the state and an rng).
        self.seed_hooks: list[Callable[[State, Any], None]] = []

    def now(self) -> float:
        return self.clock.now()

    def emit(self, event: dict[str, Any]) -> None:
        """Hand one webhook-worthy event to whoever listens (the webhook hub)."""
        for listener in self.listeners:
            listener(event)

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
        return False

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
