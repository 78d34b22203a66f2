"""Lenient parsing of SendPulse replies; bad bodies become named errors."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.http_client.api_errors import MalformedResponse, UnexpectedResponse
from connector.http_client.parsing import (
    LaxDatetime,
    LaxInt,
    Lenient,
    as_float,
    as_int,
    as_list,
    decode_json,
    model,
    models,
    one,
    parse_datetime,
    unwrap,
)


class Book(Lenient):
    id: int
    name: str
    all_email_qty: LaxInt = None
    creationdate: LaxDatetime = None


@pytest.mark.parametrize(
    ("value", "expected"),
    [(12, 12), ("12", 12), (" 12 ", 12), (12.0, 12), ("12.0", 12), (None, None), ("", None)],
)
def test_as_int_accepts_numbers_as_strings(value: object, expected: int | None) -> None:
    assert as_int(value) == expected


@pytest.mark.parametrize("value", ["twelve", True, 1.5, "1.5", [], {}])
def test_as_int_refuses_non_integers(value: object) -> None:
    with pytest.raises(ValueError):
        as_int(value)


def test_as_float() -> None:
    assert as_float("0.0044") == 0.0044
    assert as_float("1,5") == 1.5
    assert as_float(3) == 3.0
    assert as_float(None) is None
    with pytest.raises(ValueError):
        as_float("cheap")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2024-01-10 15:50:20", datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        ("2024-01-10T15:50:20.000000Z", datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        ("2024-01-10 15:50:20+00:00", datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        ("2024-01-10", datetime(2024, 1, 10, tzinfo=UTC)),
        ("10.01.2024 15:50:20", datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        ("1704901820", datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        (1704901820, datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)),
        ("0000-00-00 00:00:00", None),
        (None, None),
    ],
)
def test_dates_in_every_format_sendpulse_writes(value: object, expected: datetime) -> None:
    assert parse_datetime(value) == expected


def test_a_date_with_an_offset_keeps_the_instant() -> None:
    parsed = parse_datetime("2024-01-10T17:50:20+02:00")
    assert parsed is not None and parsed.astimezone(UTC).hour == 15


@pytest.mark.parametrize("value", ["yesterday", "2024-13-45", [2024]])
def test_unreadable_dates_raise(value: object) -> None:
    with pytest.raises(ValueError):
        parse_datetime(value)


def test_wrappers_bare_arrays_and_single_items() -> None:
    assert unwrap({"success": True, "data": [1]}) == [1]
    assert as_list([{"id": 1}]) == [{"id": 1}]
    assert as_list({"success": True, "data": {"list": [1, 2], "total": 2}}) == [1, 2]
    assert as_list({"data": [3]}) == [3]
    assert one([{"id": 1}]) == {"id": 1}
    assert one({"id": 2}) == {"id": 2}
    # A dict with a "success" key that is an ordinary item is not a wrapper.
    assert unwrap({"success": True, "id": 5}) == {"success": True, "id": 5}


def test_success_false_wrapper_is_an_error() -> None:
    with pytest.raises(UnexpectedResponse, match="success=false"):
        unwrap({"success": False, "error": "nope"})


@pytest.mark.parametrize("body", [[], [{"id": 1}, {"id": 2}], "text", 5, ["x"]])
def test_one_refuses_anything_but_one_item(body: object) -> None:
    with pytest.raises(UnexpectedResponse):
        one(body)


@pytest.mark.parametrize("body", [None, {}, {"total": 3}, {"success": True}, "text", 5])
def test_as_list_refuses_non_lists(body: object) -> None:
    # Read as "no more rows", any of these would end a list early and lose its rows.
    with pytest.raises(MalformedResponse):
        as_list(body)


def test_models_from_lenient_json() -> None:
    body = [
        {"id": "7", "name": "Leads", "all_email_qty": "12", "creationdate": "2024-01-10 15:50:20"},
        {"id": 8, "name": "Other", "new_field": True},
    ]
    books = models(Book, body)
    assert books[0].id == 7 and books[0].all_email_qty == 12
    assert books[0].creationdate == datetime(2024, 1, 10, 15, 50, 20, tzinfo=UTC)
    assert books[1].all_email_qty is None
    assert model(Book, [{"id": 9, "name": "Single"}]).id == 9


@pytest.mark.parametrize(
    "body",
    [
        [{"id": "seven", "name": "x"}],
        [{"name": "no id"}],
        [{"id": 1, "name": "x", "creationdate": "?"}],
    ],
)
def test_wrong_shapes_are_unexpected_responses(body: object) -> None:
    with pytest.raises(UnexpectedResponse, match="Book"):
        models(Book, body)


@pytest.mark.parametrize("raw", [b"{", b"<html>502</html>", b'{"a": 1', b"\xff\xfe"])
def test_malformed_json_is_retriable(raw: bytes) -> None:
    with pytest.raises(MalformedResponse):
        decode_json(raw)


def test_empty_body_is_none_and_json_parses() -> None:
    assert decode_json(b"") is None
    assert decode_json(b'{"result": true}') == {"result": True}


@settings(max_examples=300)
@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_any_body_parses_or_raises_a_named_error(raw: bytes) -> None:
    try:
        body = decode_json(raw)
        models(Book, body)
    except (MalformedResponse, UnexpectedResponse):
        pass
