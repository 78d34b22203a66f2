"""One process, many parts noticing an outage: one line down, one line back."""

from __future__ import annotations

from structlog.testing import capture_logs

from connector.db.health import DatabaseHealth


def test_an_outage_is_said_once_however_many_parts_notice() -> None:
    health = DatabaseHealth()
    with capture_logs() as logs:
        health.back(worker="w1")
        for part in ("poller", "ownership", "poller"):
            health.lost(ConnectionRefusedError(111, "refused"), worker="w1", part=part)
        health.back(worker="w1")
        health.back(worker="w1")
        health.lost(OSError("again"), worker="w1")
    assert [e["event"] for e in logs] == [
        "database_unavailable",
        "database_available",
        "database_unavailable",
    ]
    assert logs[0]["part"] == "poller" and "refused" in logs[0]["error"]
    assert health.down
