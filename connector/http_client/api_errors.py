"""SendPulse's error replies, mapped onto the project's error tree by what the caller does.

::

    RetriableError
    ├── RateLimited         HTTP 429, or error_code 2020202020 ("more than 10 requests/second")
    ├── ServerError         HTTP 5xx
    ├── TransportError      timeout, refused or dropped connection
    ├── MalformedResponse   a 2xx whose body is not the JSON it should be (truncated, HTML…)
    └── RetryLater          a quota that frees itself (791: 4 API campaigns an hour; 1004;
                            SMTP's 422 "sending limited" and "quota or bandwidth exceeded")
    FatalError
    ├── ApiError            any other 4xx; carries status, error_code and its meaning
    │   ├── NotFound        the list, campaign, email or sender does not exist
    │   ├── Rejected        the request itself is wrong (missing field, bad email, bad date)
    │   ├── Conflict        the thing already exists or is in use
    │   └── PlanLimit       the tariff or balance does not allow it
    ├── UnexpectedResponse  valid JSON of the wrong shape (a contract change, not a blip)
    └── NeedsReauth         the credentials were refused (from connector.errors)

Every mapped code keeps the meaning SendPulse documents for it, so a dead delivery says why.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.errors import FatalError, RetriableError

RATE_LIMIT_CODE = 2020202020


class ApiError(FatalError):
    """A 4xx that retrying cannot fix; ``error_code`` and ``meaning`` say which."""

    def __init__(
        self, message: str, *, status: int, error_code: int | None, meaning: str | None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.error_code = error_code
        self.meaning = meaning


class NotFound(ApiError):
    """The addressed list, campaign, email, sender or template does not exist."""


class Rejected(ApiError):
    """The request is invalid: a field is missing or malformed."""


class Conflict(ApiError):
    """The thing to create already exists, or is in use."""


class PlanLimit(ApiError):
    """The account's tariff or balance does not allow this call."""


class UnexpectedResponse(FatalError):
    """The body parsed, but not into the shape this endpoint documents."""


class RateLimited(RetriableError):
    """SendPulse said slow down (HTTP 429 or error_code 2020202020)."""

    def __init__(
        self, message: str, *, retry_after: float | None = None, error_code: int | None = None
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.error_code = error_code


class ServerError(RetriableError):
    """SendPulse answered 5xx."""

    def __init__(self, message: str, *, status: int, retry_after: float | None = None) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status = status


class TransportError(RetriableError):
    """The request timed out, or the connection failed or dropped."""


class MalformedResponse(RetriableError):
    """A success status with a body that is not JSON (or is cut short)."""


class RetryLater(RetriableError):
    """A quota that frees itself after a while; not worth retrying within one request."""

    def __init__(self, message: str, *, retry_after: float, error_code: int) -> None:
        super().__init__(message, retry_after=retry_after)
        self.error_code = error_code


@dataclass(frozen=True)
class Code:
    """One documented ``error_code``: its meaning and the error it raises."""

    code: int
    meaning: str
    kind: type[ApiError] | type[RetriableError]
    # For quota codes: how long until trying again makes sense.
    retry_after: float | None = None


def _codes(*rows: tuple[int, str, type[ApiError] | type[RetriableError]]) -> dict[int, Code]:
    return {code: Code(code, meaning, kind) for code, meaning, kind in rows}


CODES: dict[int, Code] = _codes(
    (8, "no data given", Rejected),
    (10, "sender email address missing or invalid", Rejected),
    (11, "no recipient addresses found", Rejected),
    (12, "subject missing", Rejected),
    (13, "email body is empty", Rejected),
    (14, "no email with this id", NotFound),
    (17, "invalid email address", Rejected),
    (19, "email already exists", Conflict),
    (20, "free-mail addresses cannot be senders", Rejected),
    (31, "template not found", NotFound),
    (97, "free-mail addresses cannot be senders", Rejected),
    (201, "mailing list name missing", Rejected),
    (203, "mailing list name already in use", Conflict),
    (211, "mailing list is empty", Rejected),
    (213, "mailing list not found", NotFound),
    (290, "template not found", NotFound),
    (299, "variable not found", NotFound),
    (303, "no emails given", Rejected),
    (400, "no SMTP account for this user", PlanLimit),
    (502, "email not found", NotFound),
    (550, "too many recipients", Rejected),
    (602, "campaign not found", NotFound),
    (701, "campaign data missing or invalid", Rejected),
    (703, "mailing list not found", NotFound),
    (704, "sender not found", NotFound),
    (707, "balance depleted", PlanLimit),
    (708, "over the plan's limit", PlanLimit),
    (711, "mailing list has no active subscribers", Rejected),
    (720, "campaign subject missing", Rejected),
    (721, "campaign body missing", Rejected),
    (722, "campaign mailing list id missing", Rejected),
    (731, "invalid variables", Rejected),
    (799, "bad date: use YYYY-MM-DD hh:ii:ss, not in the past", Rejected),
    (800, "campaign id missing", Rejected),
    (802, "campaign not found", NotFound),
    (901, "sender name missing", Rejected),
    (902, "sender email already in use", Conflict),
    (903, "sender email missing", Rejected),
    (904, "sender email is blacklisted", Rejected),
    (905, "sender limit reached", PlanLimit),
    (906, "sender email address invalid", Rejected),
    (999, "malformed request", Rejected),
    (1003, "sender email missing", Rejected),
    (1004, "activation code already sent; wait 15 minutes", RetryLater),
    (1005, "activation code invalid", Rejected),
    (1101, "template not found", NotFound),
    (1104, "template data invalid", Rejected),
    (791, "campaign limit reached: 4 API campaigns an hour", RetryLater),
    (3030303030, "the account's tariff does not allow this", PlanLimit),
    (RATE_LIMIT_CODE, "more than 10 requests per second", RateLimited),
)
_QUOTA_WAIT = {791: 15 * 60.0, 1004: 15 * 60.0}
# SMTP send's 422 answers that pass (the SMTP file's `sending.limited` and `quota.exceeded`):
# they share error_code 422 with permanent refusals, so only their message tells them apart.
TRANSIENT_422 = ("currently limited", "quota or bandwidth exceeded")
TRANSIENT_WAIT = 10 * 60.0

# HTTP statuses that SendPulse also echoes as error_code.
_BY_STATUS: dict[int, type[ApiError]] = {
    400: Rejected,
    403: PlanLimit,
    404: NotFound,
    409: Conflict,
    422: Rejected,
}


def describe(code: int) -> str | None:
    """SendPulse's documented meaning of an ``error_code``, if known."""
    entry = CODES.get(code)
    return entry.meaning if entry else None


def _as_int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        return int(value.strip())
    return None


def _text(body: Any) -> str:
    if isinstance(body, dict):
        for key in ("message", "error_description", "error"):
            value = body.get(key)
            if isinstance(value, str) and value:
                return value[:300]
    return ""


def error_from_reply(
    status: int, body: Any, *, retry_after: float | None = None
) -> ApiError | RetriableError:
    """The error for a non-2xx reply (401 is the token layer's business, not handled here)."""
    error_code = _as_int(body.get("error_code")) if isinstance(body, dict) else None
    message = _text(body)
    if status == 429 or error_code == RATE_LIMIT_CODE:
        reason = describe(RATE_LIMIT_CODE) if error_code == RATE_LIMIT_CODE else "rate limited"
        return RateLimited(
            f"{reason} (HTTP {status}){': ' + message if message else ''}",
            retry_after=retry_after,
            error_code=error_code,
        )
    if status >= 500:
        return ServerError(
            f"SendPulse answered {status}{': ' + message if message else ''}",
            status=status,
            retry_after=retry_after,
        )
    if status == 422 and any(part in message.lower() for part in TRANSIENT_422):
        return RetryLater(
            f"{message} [HTTP 422]",
            retry_after=retry_after or TRANSIENT_WAIT,
            error_code=error_code if error_code is not None else 422,
        )
    entry = CODES.get(error_code) if error_code is not None else None
    meaning = entry.meaning if entry else None
    summary = f"HTTP {status}"
    if error_code is not None and error_code != status:
        summary += f", error_code {error_code}"
    detail = meaning or message or "request refused"
    if meaning and message and message.lower() != meaning.lower():
        detail = f"{meaning} ({message})"
    if entry is not None and entry.kind is RetryLater:
        return RetryLater(
            f"{detail} [{summary}]",
            retry_after=retry_after or _QUOTA_WAIT.get(entry.code, 900.0),
            error_code=entry.code,
        )
    kind: type[ApiError]
    if entry is not None and issubclass(entry.kind, ApiError):
        kind = entry.kind
    else:
        kind = _BY_STATUS.get(status, ApiError)
    return kind(f"{detail} [{summary}]", status=status, error_code=error_code, meaning=meaning)
