"""The watermark: ties, late-arriving items and the overlap window, checked as properties."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from connector.diff import Watermark, apply_watermark


def test_first_poll_takes_the_highest_position_and_boundary_keys() -> None:
    step = apply_watermark(Watermark(), [("a", 5), ("b", 7), ("c", 7)], overlap=0, cap=None)
    assert step.new_keys == ["a", "b", "c"]
    assert step.cursor.position == 7
    assert step.cursor.seen == {"b": 7, "c": 7}


def test_a_tie_at_the_boundary_arriving_later_is_emitted_once() -> None:
    first = apply_watermark(Watermark(), [("a", 7)], overlap=0, cap=None)
    second = apply_watermark(first.cursor, [("a", 7), ("b", 7)], overlap=0, cap=None)
    third = apply_watermark(second.cursor, [("a", 7), ("b", 7)], overlap=0, cap=None)
    assert second.new_keys == ["b"]
    assert third.new_keys == []


def test_late_item_inside_the_overlap_is_emitted_outside_it_is_not() -> None:
    first = apply_watermark(Watermark(), [("a", 100)], overlap=10, cap=None)
    late = apply_watermark(first.cursor, [("a", 100), ("in", 95), ("out", 89)], 10, None)
    assert late.new_keys == ["in"]
    assert late.cursor.position == 100


def test_cursor_is_capped_at_the_poll_start_and_never_moves_back() -> None:
    step = apply_watermark(Watermark(), [("future", 500)], overlap=0, cap=300)
    assert step.cursor.position == 300
    # The future item is remembered, so the next poll (asking from 300) does not repeat it.
    again = apply_watermark(step.cursor, [("future", 500)], overlap=0, cap=400)
    assert again.new_keys == []
    back = apply_watermark(Watermark(position=400), [], overlap=0, cap=350)
    assert back.cursor.position == 400


def test_seen_keys_below_the_window_are_forgotten() -> None:
    step = apply_watermark(Watermark(), [("old", 1), ("new", 100)], overlap=10, cap=None)
    assert step.cursor.seen == {"new": 100}


def test_cursor_round_trips_through_json() -> None:
    cursor = Watermark(position=12.5, seen={"a": 12.5, "b": 3.0})
    assert Watermark.from_json(cursor.to_json()) == cursor
    assert Watermark.from_json(None) == Watermark()
    assert Watermark.from_json("garbage") == Watermark()


# Each poll, a few items become visible. An item's position may trail the highest position
# seen so far by at most the overlap (it arrived late), ties are common (small integers), and
# the API answers every visible item at or above the asked position, in any order.
OVERLAP = 5
batches = st.lists(
    st.lists(st.integers(-OVERLAP, 4), max_size=6),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(batches, st.randoms(use_true_random=False), st.integers(-3, 3))
def test_every_item_exactly_once(
    plan: list[list[int]], shuffle: random.Random, clock_skew: int
) -> None:
    visible: list[tuple[str, float]] = []
    emitted: list[str] = []
    cursor = Watermark()
    highest = 0
    counter = 0
    for poll, batch in enumerate(plan):
        for delta in batch:
            counter += 1
            position = max(0, highest + delta)
            visible.append((f"k{counter}", float(position)))
            highest = max(highest, position)
        since = cursor.since(OVERLAP)
        answer = [v for v in visible if since is None or v[1] >= since]
        shuffle.shuffle(answer)
        # The poll's start time may trail the items' clock a little (a skewed clock).
        cap = float(highest + clock_skew) if poll % 2 else None
        step = apply_watermark(cursor, answer, OVERLAP, cap)
        if cap is not None and step.cursor.position is not None:
            previous = cap if cursor.position is None else cursor.position
            assert step.cursor.position <= max(cap, previous)
        emitted.extend(step.new_keys)
        cursor = step.cursor
    assert len(emitted) == len(set(emitted)), "an item was emitted twice"
    assert sorted(emitted) == sorted(key for key, _ in visible), "an item was lost"
