"""The decisions of the one way changes are recorded that need no database: which deltas
become events and with what payload, which snapshot rows go back, and what a short list's diff
makes payloads of. (The writes are in tests/integration/test_record_changes.py.)"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from typing import Any, ClassVar

import pytest

from connector.diff import Delta, diff_rows
from connector.plugins import Item, SnapshotChange, Strategy, Trigger
from connector.record_changes import choose, wanted_payload
from triggers.sendpulse import _paging
from triggers.sendpulse.subscriber_added import SubscriberAdded
from triggers.sendpulse.subscriber_status_changed import SubscriberStatusChanged


class Kept(Trigger):
    """Emits changes only, keeps removed rows, and confirms each change with a call."""

    key: ClassVar[str] = "test.kept"
    strategy: ClassVar[Strategy] = "fingerprint"
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"changed", "added"})
    keeps_removed: ClassVar[bool] = True
    enriches: ClassVar[bool] = True

    def wants(self, kind: Any, payload: Mapping[str, Any]) -> bool:
        return payload.get("skip") is not True


def kept() -> Kept:
    return Kept(Kept.Params())


ADDED = Delta("added", "a", "1", None, {"id": "a"})
CHANGED = Delta("changed", "b", "2", "1", {"id": "b"})
REMOVED = Delta("removed", "c", None, "3", None)
UNWANTED = Delta("added", "d", "1", None, {"id": "d", "skip": True})


async def test_a_polls_removal_that_is_not_emitted_goes_back_to_the_snapshot() -> None:
    chosen, restore = await choose(
        kept(), [ADDED, CHANGED, REMOVED, UNWANTED], from_list=True, confirm=None
    )
    assert [(d.item_key, p) for d, p in chosen] == [("a", {"id": "a"}), ("b", {"id": "b"})]
    assert restore == [REMOVED]


async def test_a_webhooks_removal_is_the_providers_word_and_stays() -> None:
    chosen, restore = await choose(kept(), [REMOVED], from_list=False, confirm=None)
    assert (chosen, restore) == ([], [])


async def test_a_change_that_confirm_denies_is_put_back_and_no_event() -> None:
    async def confirm(delta: Delta, payload: dict[str, Any]) -> dict[str, Any] | None:
        return None if delta.item_key == "a" else {**payload, "more": 1}

    chosen, restore = await choose(kept(), [ADDED, CHANGED], from_list=True, confirm=confirm)
    assert [(d.item_key, p) for d, p in chosen] == [("b", {"id": "b", "more": 1})]
    assert restore == [ADDED]


def test_the_payload_of_a_change_says_what_it_was_and_to_filters_it() -> None:
    flow = SubscriberStatusChanged(
        SubscriberStatusChanged.Params.model_validate(
            {
                "mailing_list_id": 1,
                "to": "unsubscribed",
            }
        )
    )
    to_4 = Delta("changed", "x@y.z", "4", "1", {"email": "x@y.z", "status": 4})
    to_2 = Delta("changed", "x@y.z", "2", "1", {"email": "x@y.z", "status": 2})
    assert wanted_payload(flow, to_4) == {"email": "x@y.z", "status": 4, "previous_status": 1}
    assert wanted_payload(flow, to_2) is None
    # Not among its emits: no event whatever the payload.
    assert wanted_payload(flow, Delta("added", "x@y.z", "4", None, {"status": 4})) is None


def test_a_short_lists_diff_makes_payloads_only_for_the_rows_that_changed() -> None:
    made: list[str] = []

    def payload_of(item: Item) -> dict[str, Any]:
        made.append(item["id"])
        return {"id": item["id"], "made": True}

    incoming = {k: (fp, {"id": k}) for k, fp in [("a", "1"), ("b", "2"), ("c", "3")]}
    deltas = diff_rows(incoming, {"a": "1", "b": "9", "d": "4"}, payload_of)
    assert [(d.kind, d.item_key, d.payload) for d in deltas] == [
        ("changed", "b", {"id": "b", "made": True}),
        ("added", "c", {"id": "c", "made": True}),
        ("removed", "d", None),
    ]
    assert sorted(made) == ["b", "c"]


class Pages:
    """A limit/offset list answered from memory."""

    def __init__(self, rows: list[Item]) -> None:
        self.rows = rows
        self.requests_made = 0

    async def request(self, method: str, path: str, **kwargs: Any) -> Any:
        self.requests_made += 1
        params = kwargs["params"]
        return self.rows[params["offset"] : params["offset"] + params["limit"]]

    def iter_offset(self, path: str, **kwargs: Any) -> AsyncIterator[Item]:
        raise NotImplementedError


@pytest.mark.parametrize("size", [0, 1, 99, 100, 250])
async def test_the_paging_computes_each_rows_key_once_and_yields_it(size: int) -> None:
    rows = [{"email": f"U{n:03d}@x.z"} for n in range(size)]
    keyed: list[str] = []

    def key(row: Item) -> str:
        keyed.append(row["email"])
        return str(row["email"]).lower()

    pairs = [pair async for pair in _paging.anchored_pages(Pages(rows), "/l", key)]
    assert pairs == [(str(r["email"]).lower(), r) for r in rows]
    # Once a row, and once more for the row each later page starts on (its anchor).
    pages_after_first = max(0, (size - 1) // (_paging.PAGE - 1))
    assert len(keyed) == size + pages_after_first


async def test_a_subscriber_trigger_that_reads_its_own_way_is_keyed_from_its_rows() -> None:
    rows = [{"email": f"u{n}@x.z"} for n in range(5)]

    class Skips(SubscriberAdded):
        async def poll(self, client: Any, since: float | None) -> AsyncIterator[Item]:
            async for item in super().poll(client, since):
                if item["email"] != "u2@x.z":
                    yield item

    for cls, expected in ((SubscriberAdded, rows), (Skips, rows[:2] + rows[3:])):
        flow = cls(cls.Params.model_validate({"mailing_list_id": 1}))
        pairs = [pair async for pair in flow.keyed(Pages(rows), None)]
        assert pairs == [(r["email"], r) for r in expected]
