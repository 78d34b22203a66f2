"""A change generator: keeps the account alive for the demo and for diffing tests.

Each step makes one change through the same state methods the API uses (so webhooks fire
too) and reports it. Campaign statuses also move on by themselves with the clock; the
generator reports only what it did itself.
"""

from __future__ import annotations

import asyncio
import random
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from connector.sandbox.state import State

DEFAULT_WEIGHTS = {
    "subscriber_added": 40,
    "subscriber_unsubscribed": 15,
    "variables_changed": 25,
    "subscriber_deleted": 5,
    "campaign_created": 5,
    "deal_moved": 10,
}
TICK = 0.1


@dataclass(frozen=True)
class Change:
    """One change the generator made."""

    kind: str
    at: float
    book_id: int | None = None
    email: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)


class Generator:
    """Random but reproducible account activity (`seed` fixes the sequence)."""

    def __init__(
        self,
        state: State,
        *,
        seed: int | str = 0,
        weights: dict[str, int] | None = None,
        book_ids: list[int] | None = None,
        keep: int = 100_000,
    ) -> None:
        self.state = state
        self.rng = random.Random(seed)  # noqa: S311 - reproducible sample activity
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        unknown = set(self.weights) - set(DEFAULT_WEIGHTS)
        if unknown:
            raise ValueError(f"unknown change kinds {sorted(unknown)}")
        self.book_ids = book_ids
        self.changes: deque[Change] = deque(maxlen=keep)
        self.total = 0
        self.serial = 0
        self._task: asyncio.Task[None] | None = None
        self.rate = 0.0

    # -- one step ------------------------------------------------------------------------
    def step(self, count: int = 1) -> list[Change]:
        made: list[Change] = []
        kinds = [k for k, w in self.weights.items() if w > 0]
        weights = [self.weights[k] for k in kinds]
        while len(made) < count:
            if not kinds:
                break
            kind = self.rng.choices(kinds, weights)[0]
            change = getattr(self, f"_{kind}")()
            if change is not None:
                made.append(change)
        self.changes.extend(made)
        self.total += len(made)
        return made

    def _books(self) -> list[int]:
        ids = self.book_ids if self.book_ids is not None else list(self.state.books)
        return [i for i in ids if i in self.state.books]

    def _pick_row(self, *, active: bool | None = None) -> tuple[int, str] | None:
        books = [b for b in self._books() if len(self.state.books[b])]
        if not books:
            return None
        book = self.state.books[self.rng.choice(books)]
        for _ in range(8):
            row = book.row_at(self.rng.randrange(len(book)))
            if active is None or row.active == active:
                return book.id, row.email
        return None

    def _subscriber_added(self) -> Change | None:
        books = self._books()
        if not books:
            return None
        book_id = self.rng.choice(books)
        self.serial += 1
        email = f"gen{self.serial:07d}.{self.rng.randrange(10**6):06d}@example.com"
        variables = {"name": f"Gen {self.serial}", "visits": 0}
        self.state.add_subscriber(book_id, email, variables, source="generator")
        return Change("subscriber_added", self.state.now(), book_id, email, variables)

    def _subscriber_unsubscribed(self) -> Change | None:
        picked = self._pick_row(active=True)
        if picked is None:
            return None
        book_id, email = picked
        self.state.unsubscribe(book_id, email, reason="generator")
        return Change("subscriber_unsubscribed", self.state.now(), book_id, email)

    def _variables_changed(self) -> Change | None:
        picked = self._pick_row()
        if picked is None:
            return None
        book_id, email = picked
        self.serial += 1
        variables = {"visits": self.serial}
        self.state.set_variables(book_id, email, variables)
        return Change("variables_changed", self.state.now(), book_id, email, variables)

    def _subscriber_deleted(self) -> Change | None:
        picked = self._pick_row()
        if picked is None:
            return None
        book_id, email = picked
        self.state.remove_subscriber(book_id, email)
        return Change("subscriber_deleted", self.state.now(), book_id, email)

    def _campaign_created(self) -> Change | None:
        books = [b for b in self._books() if self.state.books[b].total(active=True)]
        if not books:
            return None
        book_id = self.rng.choice(books)
        self.serial += 1
        campaign = self.state.create_campaign([book_id], subject=f"Generated #{self.serial}")
        detail = {"campaign_id": campaign.id, "recipients": campaign.recipients}
        return Change("campaign_created", self.state.now(), book_id, None, detail)

    def _deal_moved(self) -> Change | None:
        crm = self.state.crm
        now = self.state.now()
        movable = [d for d in crm.deals.values() if d.step_id != crm.steps[d.pipeline_id][-1]]
        if not movable:
            self.serial += 1
            deal = crm.add_deal(f"Generated deal {self.serial}", now, price=self.serial)
            return Change("deal_moved", now, detail={"deal_id": deal.id, "step_id": deal.step_id})
        deal = self.rng.choice(movable)
        steps = crm.steps[deal.pipeline_id]
        crm.move_deal(deal.id, steps[steps.index(deal.step_id) + 1], now)
        return Change("deal_moved", now, detail={"deal_id": deal.id, "step_id": deal.step_id})

    # -- running at a rate ---------------------------------------------------------------
    def start(self, rate: float) -> None:
        """Make about `rate` changes per (wall-clock) second until `stop`."""
        self.stop()
        if rate <= 0:
            return
        self.rate = rate
        self._task = asyncio.get_running_loop().create_task(self._run(rate))

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            self._task = None
        self.rate = 0.0

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done()

    async def _run(self, rate: float) -> None:
        owed = 0.0
        while True:
            await asyncio.sleep(TICK)
            owed += rate * TICK
            whole = int(owed)
            if whole:
                owed -= whole
                self.step(whole)


def changes_json(changes: list[Change]) -> list[dict[str, Any]]:
    return [
        {"kind": c.kind, "at": c.at, "book_id": c.book_id, "email": c.email, "detail": c.detail}
        for c in changes
    ]


def generator_for(state: State) -> Generator:
    """The state's one generator, made on first use."""
    if state.generator is None:
        state.generator = Generator(state)
    return state.generator
