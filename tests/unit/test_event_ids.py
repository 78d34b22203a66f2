"""Event ids and delivery ids: stable, and different whenever any part differs."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from connector.diff import event_id
from connector.events import delivery_id

text = st.text(max_size=20)


def test_event_id_is_pinned() -> None:
    # A literal, so that a change of the hashing scheme (which would re-fire every old event
    # and break webhook/poll dedupe) fails here first.
    assert event_id("welcome", "sendpulse.subscriber_added", "a@x.io", "added::0") == (
        "ecbef44c0cd562a2c8e6eec019f90a248d0f86857be046bde0beabde3a9a2549"
    )
    assert str(delivery_id(event_id("f", "t", "k", "c"), 0)) == (
        "1eaadff3-d2e4-5147-bb76-1ab21f5d0c8f"
    )


@given(text, text, text, text, text, text, text, text)
def test_event_ids_differ_when_any_part_differs(
    a: str, b: str, c: str, d: str, e: str, f: str, g: str, h: str
) -> None:
    if (a, b, c, d) != (e, f, g, h):
        assert event_id(a, b, c, d) != event_id(e, f, g, h)
    else:
        assert event_id(a, b, c, d) == event_id(e, f, g, h)


def test_parts_cannot_slide_into_each_other() -> None:
    # Plain concatenation would make these equal.
    assert event_id("ab", "c", "k", "x") != event_id("a", "bc", "k", "x")
    assert event_id("f", "t", "k1", "") != event_id("f", "t", "k", "1")


def test_delivery_id_is_a_deterministic_uuid_per_action() -> None:
    eid = event_id("f", "t", "k", "c")
    assert delivery_id(eid, 0) == delivery_id(eid, 0)
    assert delivery_id(eid, 0) != delivery_id(eid, 1)
    assert delivery_id(eid, 0) != delivery_id(event_id("f", "t", "k", "d"), 0)
    assert delivery_id(eid, 0).version == 5
    assert isinstance(delivery_id(eid, 3), uuid.UUID)
