"""A poll's pure decisions, judged without a database: fresh baselines, start modes, caps."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from connector import poll_policy as policy
from connector.errors import FatalError
from connector.plugins import PluginParams

STARTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
KEY = "k" * 32


class ListParams(PluginParams):
    mailing_list_id: int


def row(**changes: Any) -> dict[str, Any]:
    base = {
        "state_key": KEY,
        "baseline_done": True,
        "connection_id": "main",
        "account_fingerprint": "acct-1",
    }
    return {**base, **changes}


# -- fresh baselines -------------------------------------------------------------------------


def test_a_flow_that_never_polled_starts_a_baseline() -> None:
    assert policy.is_fresh(None, KEY, "main", "acct-1")


def test_the_same_state_goes_on() -> None:
    assert not policy.is_fresh(row(), KEY, "main", "acct-1")


@pytest.mark.parametrize(
    "changes",
    [
        {"state_key": "other"},
        {"baseline_done": False},
        {"connection_id": "second"},
        {"account_fingerprint": "acct-2"},
    ],
    ids=["params changed", "baseline unfinished", "other connection", "other account"],
)
def test_any_change_of_what_is_watched_starts_a_baseline(changes: dict[str, Any]) -> None:
    assert policy.is_fresh(row(**changes), KEY, "main", "acct-1")


def test_an_unknown_account_on_either_side_is_the_same_account() -> None:
    assert not policy.is_fresh(row(account_fingerprint=None), KEY, "main", "acct-1")
    assert not policy.is_fresh(row(), KEY, "main", None)
    assert policy.same_account(None, None)
    assert not policy.same_account("a", "b")


def test_the_state_key_follows_type_and_params_only() -> None:
    one = policy.state_key("sendpulse.subscriber_added", ListParams(mailing_list_id=1))
    assert one == policy.state_key("sendpulse.subscriber_added", ListParams(mailing_list_id=1))
    assert one != policy.state_key("sendpulse.subscriber_added", ListParams(mailing_list_id=2))
    assert one != policy.state_key("sendpulse.subscriber_removed", ListParams(mailing_list_id=1))
    assert len(one) == 32


def test_watermark_ids_carry_the_account_when_known() -> None:
    assert policy.new_label(None) == "new"
    assert policy.new_label("acct-1") == "new@acct-1"


# -- start modes -----------------------------------------------------------------------------


def start(start: Any, *, fresh: bool = True, time_ordered: bool = True) -> policy.WatermarkStart:
    return policy.watermark_start(
        fresh=fresh, start=start, time_ordered=time_ordered, started=STARTED, trigger="t.x"
    )


def test_a_later_poll_emits_uncapped_from_the_stored_cursor_whatever_the_start() -> None:
    for mode in ("now", "all", datetime(2026, 1, 1, tzinfo=UTC)):
        assert start(mode, fresh=False) == policy.WatermarkStart(
            emit=True, capped=False, position=None, cap=STARTED.timestamp()
        )
    assert start("now", fresh=False, time_ordered=False).cap is None


def test_start_now_on_a_time_ordered_list_learns_up_to_now_and_emits_nothing() -> None:
    assert start("now") == policy.WatermarkStart(
        emit=False, capped=False, position=STARTED.timestamp(), cap=STARTED.timestamp()
    )


def test_start_now_on_an_id_ordered_list_keeps_the_empty_cursor() -> None:
    assert start("now", time_ordered=False) == policy.WatermarkStart(
        emit=False, capped=False, position=None, cap=None
    )


def test_start_all_emits_capped() -> None:
    decision = start("all")
    assert (decision.emit, decision.capped, decision.position) == (True, True, None)


def test_a_start_timestamp_sets_the_cursor_and_is_not_capped() -> None:
    when = datetime(2026, 1, 1, tzinfo=UTC)
    assert start(when) == policy.WatermarkStart(
        emit=True, capped=False, position=when.timestamp(), cap=STARTED.timestamp()
    )


def test_a_start_timestamp_on_an_id_ordered_list_is_refused() -> None:
    with pytest.raises(FatalError, match=r"t\.x is ordered by id"):
        start(datetime(2026, 1, 1, tzinfo=UTC), time_ordered=False)


def test_a_snapshot_baseline_emits_only_added_items_and_only_for_start_all() -> None:
    assert policy.first_run_emits("all", {"added", "removed"})
    assert not policy.first_run_emits("all", {"removed", "changed"})
    assert not policy.first_run_emits("now", {"added"})
    assert not policy.first_run_emits(datetime(2026, 1, 1, tzinfo=UTC), {"added"})


# -- capped selection ------------------------------------------------------------------------


def test_a_capped_pick_keeps_the_newest_and_returns_them_oldest_first() -> None:
    found: list[policy.Found] = []
    positions = [5.0, 1.0, 9.0, 3.0, 7.0, 9.0]
    for n, position in enumerate(positions, start=1):
        policy.keep(found, (position, n, {"n": n}), capped=True, limit=3)
    assert len(found) == 3
    # 9.0 twice: the one found first comes first.
    assert [item["n"] for item in policy.in_order(found)] == [5, 3, 6]
    assert policy.held_back(len(positions), len(found), capped=True) == 3


def test_an_uncapped_pick_keeps_everything_in_position_order() -> None:
    found: list[policy.Found] = []
    for n, position in enumerate([2.0, 1.0, 2.0], start=1):
        policy.keep(found, (position, n, {"n": n}), capped=False, limit=1)
    assert [item["n"] for item in policy.in_order(found)] == [2, 1, 3]
    assert policy.held_back(3, 3, capped=False) == 0
    assert policy.held_back(10, 3, capped=False) == 0


def test_a_cap_larger_than_the_list_holds_nothing_back() -> None:
    found: list[policy.Found] = []
    for n in range(1, 4):
        policy.keep(found, (float(n), n, {"n": n}), capped=True, limit=1000)
    assert [item["n"] for item in policy.in_order(found)] == [1, 2, 3]
    assert policy.held_back(3, len(found), capped=True) == 0


# -- quiet polls -----------------------------------------------------------------------------


def test_only_a_going_flow_without_an_error_to_clear_may_be_quiet() -> None:
    assert policy.may_be_quiet(fresh=False, last_error=None)
    assert not policy.may_be_quiet(fresh=True, last_error=None)
    assert not policy.may_be_quiet(fresh=False, last_error="RetriableError: down")


def test_a_watermark_poll_is_quiet_when_it_found_nothing_and_the_cursor_stayed() -> None:
    cursor = {"position": 10.0, "seen_keys": ["a", "b"]}
    same = {"seen_keys": ["a", "b"], "position": 10.0}  # the same, in another key order
    assert policy.quiet_watermark(
        fresh=False, last_error=None, events=0, cursor=cursor, previous=same
    )
    moved = {"position": 11.0, "seen_keys": ["a", "b"]}
    assert not policy.quiet_watermark(
        fresh=False, last_error=None, events=0, cursor=moved, previous=same
    )
    assert not policy.quiet_watermark(
        fresh=False, last_error=None, events=1, cursor=cursor, previous=same
    )
    assert not policy.quiet_watermark(
        fresh=True, last_error=None, events=0, cursor=cursor, previous=same
    )


def test_a_snapshot_poll_is_quiet_only_when_the_lists_digest_is_the_stored_one() -> None:
    stored = {"items": 3, "at": "2026-03-01T12:00:00+00:00", "digest": "d1"}
    assert policy.quiet_snapshot(fresh=False, last_error=None, previous=stored, digest="d1")
    assert not policy.quiet_snapshot(fresh=False, last_error=None, previous=stored, digest="d2")
    # A cursor kept without a digest (rows were put back) never matches.
    no_digest = {"items": 3, "at": "2026-03-01T12:00:00+00:00"}
    assert not policy.quiet_snapshot(fresh=False, last_error=None, previous=no_digest, digest="")
    assert not policy.quiet_snapshot(fresh=False, last_error=None, previous=None, digest="d1")
    assert not policy.quiet_snapshot(
        fresh=False, last_error="FatalError: x", previous=stored, digest="d1"
    )
