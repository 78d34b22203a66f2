"""SendPulse error replies → named errors, each code with its documented meaning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import FatalError, RetriableError
from connector.providers.errors import (
    CODES,
    ApiError,
    Conflict,
    NotFound,
    PlanLimit,
    RateLimited,
    Rejected,
    RetryLater,
    ServerError,
    describe,
    error_from_reply,
)

# The codes the issue names; each must be mapped.
REQUIRED = [
    8, 10, 11, 13, 14, 17, 19, 20, 97, 201, 203, 213, 303, 400, 502, 602, 701, 703, 704,
    707, 711, 720, 721, 722, 799, 800, 802, 901, 902, 903, 904, 905, 906, 1003, 1004, 1005,
    1101, 1104, 791, 3030303030, 2020202020,
]  # fmt: skip


@pytest.mark.parametrize("code", REQUIRED)
def test_every_required_code_maps_to_a_named_error_with_its_meaning(code: int) -> None:
    assert code in CODES
    meaning = describe(code)
    assert meaning
    error = error_from_reply(400, {"message": "server text", "error_code": code})
    assert isinstance(error, FatalError | RetriableError)
    assert getattr(error, "error_code", None) == code
    assert meaning in str(error)
    if isinstance(error, ApiError):
        assert error.meaning == meaning
        assert error.status == 400


@pytest.mark.parametrize(
    ("code", "kind"),
    [
        (213, NotFound),
        (502, NotFound),
        (802, NotFound),
        (203, Conflict),
        (902, Conflict),
        (17, Rejected),
        (799, Rejected),
        (707, PlanLimit),
        (3030303030, PlanLimit),
        (2020202020, RateLimited),
        (791, RetryLater),
        (1004, RetryLater),
    ],
)
def test_codes_fall_into_the_right_branch(code: int, kind: type[Exception]) -> None:
    assert isinstance(error_from_reply(422, {"error_code": code, "message": "x"}), kind)


def test_2020202020_counts_as_a_429_even_with_another_status() -> None:
    error = error_from_reply(400, {"error_code": "2020202020", "message": "too fast"})
    assert isinstance(error, RateLimited)
    assert isinstance(error, RetriableError)
    assert error.error_code == 2020202020


def test_429_keeps_retry_after() -> None:
    error = error_from_reply(429, {"message": "slow down"}, retry_after=7.0)
    assert isinstance(error, RateLimited)
    assert error.retry_after == 7.0


def test_quota_codes_are_retriable_later_not_now() -> None:
    error = error_from_reply(400, {"error_code": 791, "message": "limit"})
    assert isinstance(error, RetryLater)
    assert error.retry_after is not None and error.retry_after >= 600


@pytest.mark.parametrize("status", [500, 502, 503, 504])
def test_5xx_are_server_errors(status: int) -> None:
    error = error_from_reply(status, "<html>bad gateway</html>")
    assert isinstance(error, ServerError)
    assert error.status == status


@pytest.mark.parametrize(
    ("status", "body", "kind"),
    [
        (404, {"message": "Not found", "error_code": 404}, NotFound),
        (422, {"message": "The limit may not be greater than 100.", "error_code": 422}, Rejected),
        (403, {"message": "Forbidden"}, PlanLimit),
        (400, None, Rejected),
        (418, "teapot", ApiError),
        (400, {"error_code": {"nested": 1}}, Rejected),
        (400, ["not", "a", "dict"], Rejected),
    ],
)
def test_unknown_or_odd_bodies_still_map_by_status(status: int, body: object, kind: type) -> None:
    error = error_from_reply(status, body)
    assert type(error) is kind
    assert f"HTTP {status}" in str(error)


def test_server_message_is_kept_beside_the_meaning_and_cut_short() -> None:
    error = error_from_reply(400, {"error_code": 213, "message": "Book not found"})
    assert "mailing list not found" in str(error)
    assert "Book not found" in str(error)
    long = error_from_reply(400, {"message": "x" * 5000})
    assert len(str(long)) < 400


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner),
    max_leaves=10,
)


@settings(max_examples=300)
@given(
    status=st.integers(min_value=400, max_value=599).filter(lambda s: s != 401),
    body=json_values | st.fixed_dictionaries({"error_code": json_values, "message": json_values}),
)
def test_any_error_reply_maps_to_a_named_error(status: int, body: object) -> None:
    error = error_from_reply(status, body)
    assert isinstance(error, ApiError | RetriableError)
    assert str(error)
