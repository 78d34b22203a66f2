"""Lenient readers for what SendPulse returns.

Old replies quote numbers as strings, single items come back as one-element arrays, chatbot
replies are wrapped in ``{success, data}``, and dates arrive in half a dozen formats. These
helpers accept all of that; what they cannot read becomes a named error, never a crash.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, BeforeValidator, ConfigDict, ValidationError

from connector.http_client.api_errors import MalformedResponse, UnexpectedResponse

T = TypeVar("T", bound=BaseModel)

_DATE_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M:%S",
    "%d.%m.%Y %H:%M:%S",
    "%d.%m.%Y",
    "%Y-%m-%d",
)


def decode_json(raw: bytes) -> Any:
    """Parse a success body; bad JSON is retriable (it is usually a cut-off reply)."""
    if not raw.strip():
        return None
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedResponse(f"reply is not JSON ({len(raw)} bytes): {exc}") from exc


def unwrap(body: Any) -> Any:
    """``{"success": true, "data": x}`` → ``x``; a ``success: false`` wrapper is an error."""
    if isinstance(body, dict) and "success" in body and set(body) <= {"success", "data", "error"}:
        if body.get("success") in (False, "false", 0):
            raise UnexpectedResponse(f"reply says success=false: {str(body.get('error'))[:200]}")
        return body.get("data")
    return body


def as_int(value: Any) -> int | None:
    """``12``, ``"12"``, ``12.0`` → 12; ``None``/``""`` → None; anything else raises ValueError."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not an integer")
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        text = value.strip()
        try:
            return int(text)
        except ValueError:
            number = float(text)
            if number.is_integer():
                return int(number)
    raise ValueError(f"{value!r} is not an integer")


def as_float(value: Any) -> float | None:
    """``1.5``, ``"1.5"``, ``"1,5"`` → 1.5; ``None``/``""`` → None."""
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a number")
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        return float(value.strip().replace(",", "."))
    raise ValueError(f"{value!r} is not a number")


def as_list(body: Any) -> list[Any]:
    """A bare array as is; ``{"data": [...]}`` / ``{"list": [...]}`` unwrapped.

    Anything else (an empty body, ``{}``, an object with no list in it) is a
    :class:`MalformedResponse`: read as "no more rows", one bad page would end a list early,
    and a snapshot trigger would take every row after it for removed.
    """
    body = unwrap(body)
    if body is None:
        raise MalformedResponse("an empty reply where a list was expected")
    if isinstance(body, list):
        return body
    if isinstance(body, dict):
        for key in ("data", "list", "emails", "items", "result"):
            inner = body.get(key)
            if isinstance(inner, list):
                return inner
            if isinstance(inner, dict) and key == "data":
                return as_list(inner)
        raise MalformedResponse(f"expected a list, got an object with keys {sorted(body)[:5]}")
    raise MalformedResponse(f"expected a list, got {type(body).__name__}")


def one(body: Any) -> dict[str, Any]:
    """A single item that may come as ``{...}`` or ``[{...}]`` (SendPulse does both)."""
    body = unwrap(body)
    if isinstance(body, list):
        if len(body) != 1 or not isinstance(body[0], dict):
            raise UnexpectedResponse(f"expected one item, got a list of {len(body)}")
        return body[0]
    if isinstance(body, dict):
        return body
    raise UnexpectedResponse(f"expected an object, got {type(body).__name__}")


def parse_datetime(value: Any) -> datetime | None:
    """Dates as SendPulse writes them; zone-less ones are taken as UTC."""
    if value is None or value == "" or value == "0000-00-00 00:00:00":
        return None
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return datetime.fromtimestamp(float(value), UTC)
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a date")
    text = value.strip()
    if text.isdigit():
        return datetime.fromtimestamp(int(text), UTC)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        for fmt in _DATE_FORMATS:
            try:
                parsed = datetime.strptime(text, fmt)  # noqa: DTZ007 - zone added below
                break
            except ValueError:
                continue
        else:
            raise ValueError(f"{value!r} is not a date SendPulse writes") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


LaxInt = Annotated[int | None, BeforeValidator(as_int)]
LaxFloat = Annotated[float | None, BeforeValidator(as_float)]
LaxDatetime = Annotated[datetime | None, BeforeValidator(parse_datetime)]


class Lenient(BaseModel):
    """Base for reply models: unknown fields are kept, not refused (SendPulse adds fields)."""

    model_config = ConfigDict(extra="allow", frozen=True, populate_by_name=True)


def model(cls: type[T], item: Any) -> T:
    """Validate one item into ``cls``; a shape mismatch is an :class:`UnexpectedResponse`."""
    try:
        return cls.model_validate(one(item) if isinstance(item, list) else item)
    except ValidationError as exc:
        raise UnexpectedResponse(f"unexpected {cls.__name__} shape: {_first(exc)}") from exc


def models(cls: type[T], body: Any) -> list[T]:
    """Validate a list reply into ``cls`` items."""
    items = as_list(body)
    try:
        return [cls.model_validate(item) for item in items]
    except ValidationError as exc:
        raise UnexpectedResponse(f"unexpected {cls.__name__} shape: {_first(exc)}") from exc


def _first(exc: ValidationError) -> str:
    error = exc.errors(include_url=False)[0]
    where = ".".join(str(part) for part in error["loc"])
    return f"{where}: {error['msg']}"
