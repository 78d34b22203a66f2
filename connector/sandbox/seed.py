"""Deterministic starting data: `demo` (a small account) and `big:N` (one large list)."""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

from connector.sandbox.books import ACTIVE, UNSUBSCRIBED, Subscriber
from connector.sandbox.state import State

# Seeded records are dated from a fixed day, so two seeds of the same name are identical.
SEED_EPOCH = datetime(2025, 1, 1, tzinfo=UTC).timestamp()
DEMO_CLIENT = ("sandbox-client", "sandbox-secret")
FIRST_NAMES = ("Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia")
CITIES = ("Berlin", "Kyiv", "Lisbon", "Oslo", "Porto", "Riga", "Tallinn", "Vilnius")
_NO_VARIABLES: dict[str, Any] = {}


def apply_seed(state: State, seed: str) -> None:
    """Fill `state` from a seed spec: `demo`, `big:N` or `demo+big:N`."""
    for part in seed.split("+"):
        name, _, arg = part.strip().partition(":")
        if name == "demo":
            seed_demo(state)
        elif name == "big":
            try:
                count = int(arg.replace("_", "")) if arg else 100_000
            except ValueError:
                raise ValueError(f"bad seed {part!r}: big:N wants a whole number") from None
            seed_big(state, count)
        else:
            raise ValueError(f"unknown seed {part!r}; known: demo, big:N")


def seed_demo(state: State) -> None:
    rng = random.Random("demo")  # noqa: S311 - deterministic sample data
    state.auth.add_client(*DEMO_CLIENT)
    specs = (("Newsletter", 40), ("Customers", 25), ("Webinar leads", 12))
    for index, (name, size) in enumerate(specs):
        book = state.add_book(name, created=SEED_EPOCH + index * 86_400)
        for n in range(size):
            first = rng.choice(FIRST_NAMES)
            email = f"{first.lower()}.{index}{n:03d}@example.com"
            variables = {"name": first, "city": rng.choice(CITIES), "visits": rng.randint(0, 50)}
            status = UNSUBSCRIBED if rng.random() < 0.1 else ACTIVE
            row = Subscriber(email, status, variables, SEED_EPOCH + index * 86_400 + n * 60)
            book.register_variables(variables)
            book.append_fast(row)
    for hook in state.seed_hooks:
        hook(state, rng)


def seed_big(state: State, count: int) -> None:
    """One list of `count` active subscribers: `user0000001@example.com` and on."""
    book = state.add_book(f"Big list {count}", created=SEED_EPOCH)
    rows = book.bulk_rows()
    index = book.bulk_index()
    for n in range(1, count + 1):
        row = Subscriber(f"user{n:07d}@example.com", ACTIVE, _NO_VARIABLES, SEED_EPOCH + n)
        rows.append(row)
        index[row.email] = row
    book.active_count += count
