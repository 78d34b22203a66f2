"""SendPulse error replies → named errors, each code with its documented meaning."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.errors import FatalError, RetriableError
from connector.http_client.api_errors import (
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


# What each documented code means and what the caller must do about it, written out from
# SendPulse's documentation (the domain codes of the API reference, section 7), not read
# from the code under test. Actions: "fix" the request (fatal, dead at once), "none": the
# thing is not there (fatal), "exists" already (fatal), "plan": the account's plan or
# balance must change (fatal), "later": retry after a long wait, "slow": retry with backoff.
EXPECTED: dict[int, tuple[str, str]] = {
    8: ("no data", "fix"),
    10: ("sender", "fix"),
    11: ("recipient", "fix"),
    12: ("subject missing", "fix"),
    13: ("body is empty", "fix"),
    14: ("no email with this id", "none"),
    17: ("invalid email", "fix"),
    19: ("already exists", "exists"),
    20: ("free-mail", "fix"),
    31: ("template not found", "none"),
    97: ("free-mail", "fix"),
    201: ("mailing list name missing", "fix"),
    203: ("already in use", "exists"),
    211: ("mailing list is empty", "fix"),
    213: ("mailing list not found", "none"),
    290: ("template not found", "none"),
    299: ("variable not found", "none"),
    303: ("no emails", "fix"),
    400: ("no smtp account", "plan"),
    502: ("email not found", "none"),
    550: ("too many recipients", "fix"),
    602: ("campaign not found", "none"),
    701: ("campaign data", "fix"),
    703: ("mailing list not found", "none"),
    704: ("sender not found", "none"),
    707: ("balance depleted", "plan"),
    708: ("limit", "plan"),
    711: ("no active subscribers", "fix"),
    720: ("subject missing", "fix"),
    721: ("body missing", "fix"),
    722: ("mailing list id missing", "fix"),
    731: ("variables", "fix"),
    791: ("4 api campaigns an hour", "later"),
    799: ("yyyy-mm-dd hh:ii:ss", "fix"),
    800: ("campaign id missing", "fix"),
    802: ("campaign not found", "none"),
    901: ("sender name missing", "fix"),
    902: ("already in use", "exists"),
    903: ("sender email missing", "fix"),
    904: ("blacklisted", "fix"),
    905: ("sender limit", "plan"),
    906: ("sender email address invalid", "fix"),
    999: ("malformed", "fix"),
    1003: ("sender email missing", "fix"),
    1004: ("wait 15 minutes", "later"),
    1005: ("activation code invalid", "fix"),
    1101: ("template not found", "none"),
    1104: ("template data invalid", "fix"),
    3030303030: ("tariff", "plan"),
    2020202020: ("more than 10 requests per second", "slow"),
}
ACTIONS: dict[str, type[Exception]] = {
    "fix": Rejected,
    "none": NotFound,
    "exists": Conflict,
    "plan": PlanLimit,
    "later": RetryLater,
    "slow": RateLimited,
}


def test_the_table_holds_exactly_the_documented_codes() -> None:
    assert sorted(CODES) == sorted(EXPECTED)


@pytest.mark.parametrize(("code", "expected"), sorted(EXPECTED.items()), ids=str)
def test_each_code_means_what_the_documentation_says(code: int, expected: tuple[str, str]) -> None:
    words, action = expected
    error = error_from_reply(400, {"message": "server text", "error_code": code})
    assert type(error) is ACTIONS[action]
    meaning = describe(code)
    assert meaning is not None and words in meaning.lower()
    assert words in str(error).lower()
    retriable = action in ("later", "slow")
    assert isinstance(error, RetriableError) is retriable
    assert isinstance(error, FatalError) is not retriable
    if action == "later":
        # Long enough that the campaign hour or the activation wait can pass.
        assert error.retry_after is not None and error.retry_after >= 15 * 60


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


def _nested(inner: st.SearchStrategy[object]) -> st.SearchStrategy[object]:
    # A named function, not a lambda: Hypothesis reads a lambda's source to check that it
    # uses its argument, and warns (an error here) when the source cannot be read.
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    _nested,
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
