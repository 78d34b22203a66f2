"""SMTP send's documented 422 answers: the passing ones are retried later, the rest refused."""

from __future__ import annotations

import pytest

from connector.http_client.api_errors import Rejected, RetryLater, error_from_reply


@pytest.mark.parametrize(
    "message",
    [
        "Sending from your account is currently limited. Please try later.",
        "Sending quota or bandwidth exceeded",
    ],
)
def test_transient_422s_are_retried_later(message: str) -> None:
    error = error_from_reply(422, {"message": message, "error_code": 422})
    assert isinstance(error, RetryLater)
    assert (error.retry_after, error.error_code) == (600.0, 422)


def test_a_transient_422_keeps_a_retry_after_it_was_given() -> None:
    body = {"message": "Sending quota or bandwidth exceeded", "error_code": 422}
    assert error_from_reply(422, body, retry_after=30.0).retry_after == 30.0


@pytest.mark.parametrize(
    ("body", "meaning"),
    [
        ({"message": "Sender is not valid", "error_code": 422}, None),
        ({"message": "Argument subject missing", "error_code": 12}, "subject missing"),
        ({"message": "Message size limit exceeded", "error_code": 422}, None),
        ({"message": "5.5.3 Too many recipients", "error_code": 550}, "too many recipients"),
    ],
)
def test_other_422s_are_refusals(body: dict[str, object], meaning: str | None) -> None:
    error = error_from_reply(422, body)
    assert isinstance(error, Rejected)
    assert (error.status, error.meaning) == (422, meaning)
