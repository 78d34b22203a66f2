"""Prometheus metrics: one registry per process, served at ``/metrics``.

Names follow Prometheus conventions (``_total`` counters, ``_seconds`` histograms). Labels are
bounded: flow and connection names come from the flow file, never from event data.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

REGISTRY = CollectorRegistry(auto_describe=True)

POLLS = Counter(
    "connector_polls_total",
    "Polls of a flow, by outcome (ok, error, skipped).",
    ["flow", "outcome"],
    registry=REGISTRY,
)
POLL_SECONDS = Histogram(
    "connector_poll_duration_seconds",
    "Wall time of one poll of a flow.",
    ["flow"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300),
    registry=REGISTRY,
)
API_REQUESTS = Counter(
    "connector_api_requests_total",
    "Requests sent to a provider API, by connection and HTTP status (or 'error').",
    ["connection", "status"],
    registry=REGISTRY,
)
RATE_LIMITED = Counter(
    "connector_api_rate_limited_total",
    "Answers that said the rate limit was exceeded (429 or SendPulse's 2020202020).",
    ["connection"],
    registry=REGISTRY,
)
TOKEN_REFRESHES = Counter(
    "connector_token_refreshes_total",
    "Access tokens fetched from a provider.",
    ["connection"],
    registry=REGISTRY,
)
EVENTS_CREATED = Counter(
    "connector_events_created_total",
    "New events recorded, by flow and source (poll or webhook).",
    ["flow", "source"],
    registry=REGISTRY,
)
DELIVERIES = Counter(
    "connector_deliveries_total",
    "Delivery attempts, by flow, action and outcome (delivered, retry, dead).",
    ["flow", "action", "outcome"],
    registry=REGISTRY,
)
DELIVERY_LATENCY = Histogram(
    "connector_delivery_latency_seconds",
    "Time from an event's commit to its successful delivery.",
    ["flow"],
    buckets=(0.01, 0.05, 0.1, 0.5, 1, 5, 30, 60, 300, 1800, 7200),
    registry=REGISTRY,
)
DEAD_DELIVERIES = Gauge(
    "connector_dead_deliveries",
    "Deliveries in the dead state, waiting for a replay.",
    registry=REGISTRY,
)
LEASES_HELD = Gauge(
    "connector_leases_held",
    "Connection leases this worker holds.",
    registry=REGISTRY,
)
WEBHOOKS_RECEIVED = Counter(
    "connector_webhooks_received_total",
    "SendPulse webhook requests taken in, by connection and outcome.",
    ["connection", "outcome"],
    registry=REGISTRY,
)


def render() -> bytes:
    """The registry in Prometheus' text format."""
    return generate_latest(REGISTRY)
