"""Fingerprints: a change of a watched field changes it; nothing else does."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from connector.diff import canonical_json, fingerprint
from connector.engine import state_key
from connector.plugins import PluginParams


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
