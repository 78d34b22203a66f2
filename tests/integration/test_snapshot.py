"""The snapshot diff at size: 100,000 subscribers paged from the sandbox, 1% churn."""

from __future__ import annotations

import json
import random
from typing import Any, ClassVar

import asyncpg
import pytest

from connector.diff import SnapshotLoader, snapshot_baseline, snapshot_diff
from connector.engine import poll_flow
from connector.plugins import Item, SnapshotChange
from connector.sandbox.seed import seed_big
from tests.integration.test_triggers import harness
from triggers.sendpulse._subscribers import ListParams, SubscriberTrigger

SIZE = 100_000


class EveryChange(SubscriberTrigger):
    """All three kinds of change on one list, so one pass checks them together."""

    key: ClassVar[str] = "test.every_change"
    Params = ListParams
    strategy = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added", "removed", "changed"})

    def fingerprint_of(self, item: Item) -> str:
        return str(item.get("status"))


def churn(state: Any, book_id: int, size: int, rate: float, seed: int) -> dict[str, set[str]]:
    """Change ``rate`` of the list a third each way; returns what was done."""
    rng = random.Random(seed)  # noqa: S311 - test data
    picks = rng.sample(range(1, size + 1), int(size * rate))
    third = len(picks) // 3
    made: dict[str, set[str]] = {"added": set(), "removed": set(), "changed": set()}
    for n in picks[:third]:
        email = f"user{n:07d}@example.com"
        state.remove_subscriber(book_id, email)
        made["removed"].add(email)
    for n in picks[third : 2 * third]:
        email = f"user{n:07d}@example.com"
        state.set_status(book_id, email, 4)
        made["changed"].add(email)
    for n in picks[2 * third :]:
        email = f"new{n:07d}@example.com"
        state.add_subscriber(book_id, email, webhook=False)
        made["added"].add(email)
    return made


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_diff_of_100k_subscribers_finds_exactly_the_changes(
    db_pool: asyncpg.Pool,
) -> None:
    async with harness(db_pool) as h:
        seed_big(h.state, SIZE)
        book_id = next(iter(h.state.books))
        flow, _ = h.flow("sendpulse.subscriber_added", {"mailing_list_id": book_id})
        params = ListParams(mailing_list_id=book_id)

        async def poll() -> Any:
            return await poll_flow(
                flow, params, client=h.client, pool=db_pool, worker="w", trigger=EveryChange
            )

        baseline = await poll()
        assert (baseline.items_seen, baseline.events_created) == (SIZE, 0)
        made = churn(h.state, book_id, SIZE, 0.01, seed=7)
        result = await poll()
        rows = await db_pool.fetch("SELECT item_key, payload FROM events")
    found: dict[str, set[str]] = {"added": set(), "removed": set(), "changed": set()}
    for row in rows:
        payload = row["payload"]
        kind = "removed" if "status" not in payload else "added"
        if kind == "added" and not row["item_key"].startswith("new"):
            kind = "changed"
        found[kind].add(row["item_key"])
    assert found == made
    assert result.events_created == sum(len(v) for v in made.values()) == SIZE // 100
    # Pages of 100 overlapping by one row (see triggers/sendpulse/_paging.py).
    total = SIZE - len(made["removed"]) + len(made["added"])
    assert result.requests == 1 + (total - 100) // 99 + 1


async def test_snapshot_diff_in_sql_alone(db_pool: asyncpg.Pool) -> None:
    """The SQL part on its own: a baseline, then one of each change, applied in place."""
    async with db_pool.acquire() as conn:

        async def load(rows: list[tuple[str, str]]) -> None:
            loader = SnapshotLoader(conn, page_size=2)
            await loader.open()
            for key, fp in rows:
                await loader.add(key, fp, json.dumps({"k": key}))
            await loader.close()

        await load([("a", "1"), ("b", "1"), ("c", "1"), ("c", "1")])
        async with conn.transaction():
            assert await snapshot_baseline(conn, "f") == 3
        await load([("a", "1"), ("b", "2"), ("d", "1")])
        # How fast the diff is belongs to bench/diff.py ("diff alone").
        async with conn.transaction():
            assert await snapshot_diff(conn, "f") == 3
        delta = await conn.fetch("SELECT kind, item_key, previous FROM snapshot_delta ORDER BY 2")
        stored = await conn.fetch("SELECT item_key, fingerprint FROM snapshot_items ORDER BY 1")
    assert [tuple(r) for r in delta] == [
        ("changed", "b", "1"),
        ("removed", "c", "1"),
        ("added", "d", None),
    ]
    assert [tuple(r) for r in stored] == [("a", "1"), ("b", "2"), ("d", "1")]
