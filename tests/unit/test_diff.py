"""Fingerprints: a change of a watched field changes it; nothing else does."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from connector.diff import (
    Delta,
    ListDigest,
    canonical_json,
    diff_rows,
    fingerprint,
    first_run_keys,
)
from connector.plugins import PluginParams
from connector.poll_policy import state_key


def test_fingerprint_ignores_unwatched_fields_and_key_order() -> None:
    a = {"email": "a@x.io", "status": 1, "phone": "1"}
    b = {"phone": "2", "status": 1, "email": "a@x.io"}
    assert fingerprint(a, ["status"]) == fingerprint(b, ["status"])
    assert fingerprint(a, ["status", "phone"]) != fingerprint(b, ["status", "phone"])


def test_fingerprint_sees_nested_changes_in_any_key_order() -> None:
    a = {"variables": {"name": "Ann", "city": "Kyiv"}}
    b = {"variables": {"city": "Kyiv", "name": "Ann"}}
    c = {"variables": {"city": "Lviv", "name": "Ann"}}
    assert fingerprint(a, ["variables"]) == fingerprint(b, ["variables"])
    assert fingerprint(a, ["variables"]) != fingerprint(c, ["variables"])


def test_fingerprint_tells_types_apart() -> None:
    # "1" and 1 are different values from the API's point of view.
    assert fingerprint({"status": 1}, ["status"]) != fingerprint({"status": "1"}, ["status"])
    assert fingerprint({}, ["status"]) == fingerprint({"status": None}, ["status"])


@given(st.dictionaries(st.text(max_size=5), st.integers() | st.text(max_size=5), max_size=5))
def test_fingerprint_is_a_function_of_the_watched_values(item: dict[str, object]) -> None:
    fields = sorted(item)[:2]
    copy = dict(reversed(list(item.items())))
    assert fingerprint(item, fields) == fingerprint(copy, fields)
    assert len(fingerprint(item, fields)) == 24


def test_canonical_json_is_sorted_and_compact() -> None:
    assert canonical_json({"b": 1, "a": [1, "é"]}) == '{"a":[1,"é"],"b":1}'


class _P(PluginParams):
    mailing_list_id: int
    to: str | None = None


def test_state_key_changes_with_type_or_params_only() -> None:
    base = state_key("sendpulse.subscriber_added", _P(mailing_list_id=1))
    assert base == state_key("sendpulse.subscriber_added", _P(mailing_list_id=1))
    assert base != state_key("sendpulse.subscriber_removed", _P(mailing_list_id=1))
    assert base != state_key("sendpulse.subscriber_added", _P(mailing_list_id=2))
    assert base != state_key("sendpulse.subscriber_added", _P(mailing_list_id=1, to="x"))


def test_list_digest_follows_rows_and_order_and_cannot_be_shifted() -> None:
    def digest(rows: list[tuple[str, str]]) -> str:
        d = ListDigest()
        for key, fp in rows:
            d.add(key, fp)
        return d.hexdigest()

    rows = [("a", "1"), ("b", "2")]
    assert digest(rows) == digest(list(rows))
    assert digest(rows) != digest(rows[::-1])
    assert digest(rows) != digest([("a", "1"), ("b", "3")])
    assert digest(rows) != digest(rows[:1])
    assert digest([("ab", "c")]) != digest([("a", "bc")])
    assert digest([]) != digest([("", "")])


def test_diff_rows_in_key_order_with_payloads_only_for_rows_that_came() -> None:
    when = datetime(2026, 1, 2, tzinfo=UTC)
    incoming = {"c": ("1", {"id": "c", "at": when}), "a": ("2", None), "b": ("9", {"id": "b"})}
    stored = {"a": "1", "b": "9", "d": "4"}
    assert diff_rows(incoming, stored) == [
        Delta("changed", "a", "2", "1", None),
        Delta("added", "c", "1", None, {"id": "c", "at": "2026-01-02 00:00:00+00:00"}),
        Delta("removed", "d", None, "4", None),
    ]
    assert diff_rows({}, {}) == []
    assert diff_rows({"a": ("1", None)}, {"a": "1"}) == []


def test_first_run_keys_are_the_newest_by_the_order_field_oldest_first() -> None:
    items = [("c", {"id": 3}), ("a", {"id": 10}), ("b", {"id": 7}), ("d", {"id": 1})]
    assert first_run_keys(items, 2, "id") == ["b", "a"]
    assert first_run_keys(items, 10, "id") == ["d", "c", "b", "a"]


def test_first_run_keys_without_an_order_are_the_first_as_listed() -> None:
    items = [("z", {"id": 3}), ("a", {"id": 10}), ("m", {})]
    assert first_run_keys(items, 2, None) == ["z", "a"]
    # Rows whose order field is not a number (or a bool) count as unordered: they come last.
    mixed = [("x", {"id": "7"}), ("y", {"id": 2}), ("w", {"id": True})]
    assert first_run_keys(mixed, 2, "id") == ["x", "y"]
    assert first_run_keys(mixed, 1, "id") == ["y"]
