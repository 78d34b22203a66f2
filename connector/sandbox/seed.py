"""Deterministic starting data: `demo` (a small, lively account) and `big:N` (one large list).

Seeded records are dated from a fixed day, so two seeds of the same name are identical
whatever the clock says; only what happens after seeding depends on time.
"""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime
from typing import Any

from connector.sandbox.books import ACTIVE, UNSUBSCRIBED, Subscriber
from connector.sandbox.state import State

SEED_EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
DAY = 86_400.0
DEMO_CLIENT = ("sandbox-client", "sandbox-secret")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
LAST_NAMES = ("Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Perlman")
CITIES = ("Berlin", "Kyiv", "Lisbon", "Oslo", "Porto", "Riga", "Tallinn", "Vilnius")
_NO_VARIABLES: dict[str, Any] = {}


def parse_seed(seed: str) -> list[tuple[str, int]]:
    """`demo+big:1000` -> [("demo", 0), ("big", 1000)]; ValueError names a bad part."""
    parts: list[tuple[str, int]] = []
    for part in seed.split("+"):
        name, _, arg = part.strip().partition(":")
        if name == "demo" and not arg:
            parts.append(("demo", 0))
        elif name == "big":
            try:
                count = int(arg.replace("_", "")) if arg else 100_000
            except ValueError:
                raise ValueError(f"bad seed {part!r}: big:N wants a whole number") from None
            if count < 0:
                raise ValueError(f"bad seed {part!r}: N must not be negative")
            parts.append(("big", count))
        else:
            raise ValueError(f"unknown seed {part!r}; known: demo, big:N")
    return parts


def apply_seed(state: State, seed: str) -> None:
    """Fill `state` from a seed spec: `demo`, `big:N`, or several joined by `+`."""
    for name, count in parse_seed(seed):
        if name == "demo":
            seed_demo(state)
        else:
            seed_big(state, count)


def seed_demo(state: State) -> None:
    """Three lists, senders, sent campaigns, SMTP history, CRM, a chatbot, push and A360."""
    rng = random.Random("demo")  # noqa: S311 - deterministic sample data
    state.auth.add_client(*DEMO_CLIENT)
    state.campaigns.add_sender("news@example.com", "Example News", SEED_EPOCH)
    _demo_books(state, rng)
    _demo_campaigns(state)
    for n in range(6):
        to = f"customer{n}@example.com" if n != 4 else "gone@bounce.example.com"
        state.smtp.send(
            "news@example.com", [to], f"Receipt #{1000 + n}", 2048, SEED_EPOCH + n * DAY
        )
    state.smtp.unsubscribe("customer5@example.com", SEED_EPOCH + 5 * DAY)
    _demo_crm(state, rng)
    _demo_chatbot(state, rng)
    site = state.add_push_website("https://shop.example.com", added=SEED_EPOCH)
    for n in range(5):
        state.add_push_subscription(site.id, city=CITIES[n], subscribed=SEED_EPOCH + n * DAY)
    state.add_autoresponder("Welcome series", created=SEED_EPOCH)
    state.add_autoresponder("Abandoned cart", created=SEED_EPOCH + DAY)


def _demo_books(state: State, rng: random.Random) -> None:
    specs = (("Newsletter", 40), ("Customers", 25), ("Webinar leads", 12))
    for index, (name, size) in enumerate(specs):
        book = state.add_book(name, created=SEED_EPOCH + index * DAY)
        for n in range(size):
            first = rng.choice(FIRST_NAMES)
            email = f"{first.lower()}.{index}{n:03d}@example.com"
            variables = {"name": first, "city": rng.choice(CITIES), "visits": rng.randint(0, 50)}
            status = UNSUBSCRIBED if rng.random() < 0.1 else ACTIVE
            row = Subscriber(email, status, variables, SEED_EPOCH + index * DAY + n * 60)
            book.register_variables(variables)
            book.append_fast(row)


def _demo_campaigns(state: State) -> None:
    for n, book_id in enumerate((1, 2, 1)):
        state.create_campaign(
            [book_id],
            subject=f"Issue #{n + 1}",
            sender_email="news@example.com",
            sender_name="Example News",
            name=f"Demo campaign {n + 1}",
            created=SEED_EPOCH + (n + 3) * DAY,
        )


def _demo_crm(state: State, rng: random.Random) -> None:
    for n in range(6):
        first, last = FIRST_NAMES[n], LAST_NAMES[n]
        state.crm.add_contact(
            first,
            last,
            SEED_EPOCH + n * DAY,
            emails=[f"{first.lower()}@example.com"],
            phones=[f"38050{rng.randrange(10**7):07d}"],
        )
    for n in range(4):
        deal = state.crm.add_deal(
            f"Deal {n + 1}", SEED_EPOCH + n * DAY, price=100.0 * (n + 1), contacts=[n + 1]
        )
        deal.step_id = 1 + n % 3


def _demo_chatbot(state: State, rng: random.Random) -> None:
    bot = state.chatbots.add_bot("telegram", "Example shop bot", SEED_EPOCH)
    for n in range(4):
        tags = ["vip"] if n % 2 == 0 else []
        variables = {"plan": rng.choice(("free", "pro"))}
        when = SEED_EPOCH + n * DAY
        contact = state.chatbots.add_contact(
            bot.id, FIRST_NAMES[n], when, tags=tags, variables=variables
        )
        state.chatbots.add_message(contact, "Hello!", 1, SEED_EPOCH + n * DAY + 60)


def seed_big(state: State, count: int) -> float:
    """One list of `count` active subscribers, `user0000001@example.com` on; returns seconds."""
    started = time.perf_counter()
    book = state.add_book(f"Big list {count}", created=SEED_EPOCH)
    rows = book.bulk_rows()
    index = book.bulk_index()
    for n in range(1, count + 1):
        row = Subscriber(f"user{n:07d}@example.com", ACTIVE, _NO_VARIABLES, SEED_EPOCH + n)
        rows.append(row)
        index[row.email] = row
    book.active_count += count
    return time.perf_counter() - started
