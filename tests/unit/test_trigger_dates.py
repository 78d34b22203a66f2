"""Trigger dates: every documented form is read, and nothing unreadable becomes position 0."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from connector.http_client.api_errors import UnexpectedResponse
from triggers.sendpulse._dates import epoch, epoch_or_none, parse_datetime

TS = datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    "value",
    [
        TS,
        int(TS),
        str(int(TS)),
        f" {int(TS)} ",
        "2024-01-10 15:50:20",
        "2024-01-10T15:50:20",
        "2024-01-10T15:50:20Z",
        "2024-01-10T17:50:20+02:00",
        "2024-01-10T15:50:20.000000Z",
        "10.01.2024 15:50:20",
    ],
)
def test_documented_dates_and_unix_seconds_are_read(value: object) -> None:
    assert epoch(value) == TS


def test_fractions_and_bare_days() -> None:
    assert epoch("1704901820.25") == TS + 0.25
    assert epoch("2024-01-10") == epoch("10.01.2024") == TS - (15 * 3600 + 50 * 60 + 20)


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", "nan", "-1", True, [TS], {}, 1e20])
def test_unreadable_dates_fail_instead_of_becoming_zero(value: object) -> None:
    with pytest.raises(UnexpectedResponse, match="unreadable date"):
        epoch(value)
    with pytest.raises(UnexpectedResponse):
        epoch_or_none(value)
    # Payload dates stay lenient: the raw value is kept in the item.
    assert parse_datetime(value) is None


@pytest.mark.parametrize("value", [None, "", "0000-00-00 00:00:00"])
def test_a_missing_date_cannot_order_an_item(value: object) -> None:
    assert epoch_or_none(value) is None
    assert parse_datetime(value) is None
    with pytest.raises(UnexpectedResponse, match="no date"):
        epoch(value)
