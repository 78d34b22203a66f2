"""What an attempt leaves once its finish is written: its metrics and its one log line."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any

import structlog

from connector import metrics
from connector.delivery_outcomes import Outcome

if TYPE_CHECKING:
    from connector.dispatch import Claimed

# The dispatcher's lines, under its name.
log = structlog.get_logger("connector.dispatch")

# The attempt row's outcome (and the counter's label) for each new state of a delivery.
OUTCOME_NAMES = {"delivered": "delivered", "pending": "retry", "dead": "dead"}


class DeliveryReport:
    """Counts and logs finished attempts, keeping the Prometheus children it uses.

    labels() checks its arguments and takes a lock at every call; flows and actions come
    from the flow file, so the children kept are few.
    """

    def __init__(self, clock: Callable[[], datetime]) -> None:
        self.clock = clock
        self._counters: dict[tuple[str, str, str], Any] = {}
        self._latencies: dict[str, Any] = {}

    def __call__(
        self, item: Claimed, outcome: Outcome, duration_ms: int, *, recorded: bool
    ) -> None:
        """Count and log an attempt whose finish was written (``recorded``) or refused."""
        fields = {
            "flow": item.event.flow,
            "trigger": item.event.trigger,
            "event_id": item.event.id,
            "item_key": item.event.item_key,
            "action": item.action_type,
            "action_index": item.action_index,
            "delivery_id": str(item.id),
            "attempt": item.attempt,
            "duration_ms": duration_ms,
        }
        if recorded:
            self._counter(item, outcome.state).inc()
            if outcome.state == "delivered":
                self._latency(item.event.flow).observe(
                    max(0.0, (self.clock() - item.event.created_at).total_seconds())
                )
        if not recorded:
            # The lease ran out and the rescuer handed the row on: this result is not ours.
            log.warning("delivery_lease_lost", outcome=outcome.state, **fields)
        elif outcome.state == "delivered":
            log.info(
                "trigger_delivered",
                summary=outcome.summary,
                status_code=outcome.status_code,
                **fields,
            )
        elif outcome.state == "pending" and outcome.next_attempt_at is not None:
            log.warning(
                "delivery_failed",
                error=outcome.error,
                status_code=outcome.status_code,
                next_attempt_at=outcome.next_attempt_at.isoformat(timespec="seconds"),
                **fields,
            )
        else:
            log.error(
                "delivery_dead",
                error=outcome.error,
                status_code=outcome.status_code,
                **fields,
            )

    def _counter(self, item: Claimed, state: str) -> Any:
        key = (item.event.flow, item.action_type, state)
        child = self._counters.get(key)
        if child is None:
            child = self._counters[key] = metrics.DELIVERIES.labels(
                flow=item.event.flow, action=item.action_type, outcome=OUTCOME_NAMES[state]
            )
        return child

    def _latency(self, flow: str) -> Any:
        child = self._latencies.get(flow)
        if child is None:
            child = self._latencies[flow] = metrics.DELIVERY_LATENCY.labels(flow=flow)
        return child
