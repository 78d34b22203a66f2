"""The decisions of a poll that need no database: fresh baselines, start modes, capped picks.

The engine asks these and does what they say; kept pure so that each rule is tested on its
own, without Postgres or a provider.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from connector.diff import canonical_json
from connector.errors import FatalError
from connector.plugins import PluginParams

Start = Literal["now", "all"] | datetime
# A watermark item on its way to an event: its position, the order it was found in, the item.
Found = tuple[float, int, dict[str, Any]]


def state_key(trigger_type: str, params: PluginParams) -> str:
    """Identifies what a flow watches; when it changes, the flow starts a new baseline.

    The connection is not part of it (the webhook intake compares keys too): the engine
    compares the stored ``connection_id`` beside it, with the same effect.
    """
    raw = canonical_json({"type": trigger_type, "params": params.model_dump(mode="json")})
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()[:32]


def same_account(stored: str | None, current: str | None) -> bool:
    """Whether state stored under account ``stored`` goes on under account ``current``.

    Unknown on either side counts as the same: state from before fingerprints were kept is
    adopted by the account that polls it next, and a poll that names no account (a test, a
    tool) compares nothing.
    """
    return stored is None or current is None or stored == current


def new_label(account: str | None) -> str:
    """The change part of a watermark event's id.

    Ids grow in each account on their own, so deal 7 of one account and deal 7 of the next
    are two items: the account keeps the second from taking the first one's id (and being
    dropped as already recorded). Without a known account the label stays as it always was.
    """
    return "new" if account is None else f"new@{account}"


def is_fresh(
    state: Mapping[str, Any] | None, key: str, connection: str | None, account: str | None
) -> bool:
    """Whether a poll starts a new baseline rather than going on from the stored state.

    ``state`` is the flow's ``flow_state`` row (None: the flow never polled).
    """
    return (
        state is None
        or state["state_key"] != key
        or not state["baseline_done"]
        # Another account's list is no continuation of this one's: a new baseline.
        or state["connection_id"] != connection
        or not same_account(state["account_fingerprint"], account)
    )


@dataclass(frozen=True)
class WatermarkStart:
    """How a watermark poll begins."""

    # Whether new items become events (a ``start: now`` baseline only learns the cursor).
    emit: bool
    # Whether only the newest ``max_first_run_events`` are kept (``start: all``).
    capped: bool
    # Where the cursor starts instead of the stored one (None: the stored one).
    position: float | None
    # Time-ordered lists: the poll's start, the highest position this poll may take.
    cap: float | None


def watermark_start(
    *, fresh: bool, start: Start, time_ordered: bool, started: datetime, trigger: str
) -> WatermarkStart:
    """The start-mode policy of a watermark poll; raises FatalError for a start it cannot use."""
    cap = started.timestamp() if time_ordered else None
    if not fresh:
        return WatermarkStart(emit=True, capped=False, position=None, cap=cap)
    if isinstance(start, datetime):
        if not time_ordered:
            raise FatalError(f"{trigger} is ordered by id; a start timestamp cannot apply")
        return WatermarkStart(emit=True, capped=False, position=start.timestamp(), cap=cap)
    if start == "all":
        return WatermarkStart(emit=True, capped=True, position=None, cap=cap)
    # A baseline of a time-ordered list is "everything before now": read only the overlap
    # window, so that items just before now are known and never fire on the next poll.
    return WatermarkStart(emit=False, capped=False, position=cap, cap=cap)


def keep(found: list[Found], entry: Found, *, capped: bool, limit: int) -> None:
    """Add ``entry``; a capped poll keeps only the ``limit`` newest, in a bounded heap."""
    if not capped:
        found.append(entry)
    elif len(found) < limit:
        heapq.heappush(found, entry)
    else:
        heapq.heappushpop(found, entry)


def in_order(found: list[Found]) -> list[dict[str, Any]]:
    """The kept items, oldest first (ties in the order they were found)."""
    return [item for _, _, item in sorted(found, key=lambda e: (e[0], e[1]))]


def held_back(wanted: int, kept: int, *, capped: bool) -> int:
    """How many wanted items a capped first run left out."""
    return max(0, wanted - kept) if capped else 0


def first_run_emits(start: Start, emits: Collection[str]) -> bool:
    """Whether a snapshot baseline emits its items: only "added" has an "all" to start from."""
    return start == "all" and "added" in emits


def may_be_quiet(*, fresh: bool, last_error: str | None) -> bool:
    """Whether a poll that finds nothing may skip its commit.

    A new baseline commits whatever it finds, and so does a flow whose last poll failed:
    its error must be cleared.
    """
    return not fresh and last_error is None


def quiet_watermark(
    *, fresh: bool, last_error: str | None, events: int, cursor: Any, previous: Any
) -> bool:
    """A watermark poll that found no event and left the cursor where it was."""
    return (
        events == 0
        and may_be_quiet(fresh=fresh, last_error=last_error)
        and canonical_json(cursor) == canonical_json(previous)
    )


def quiet_snapshot(*, fresh: bool, last_error: str | None, previous: Any, digest: str) -> bool:
    """A snapshot poll that read the same rows in the same order as the snapshot holds.

    ``previous`` is the stored cursor, which keeps the digest of the list that made the
    snapshot (absent when the commit put rows back, so the snapshot is no such list).
    """
    stored = previous if isinstance(previous, dict) else {}
    return may_be_quiet(fresh=fresh, last_error=last_error) and stored.get("digest") == digest
