"""What arrives on the wire, read leniently the way SendPulse's own SDKs send it.

pysendpulse sends GET parameters as one URL-encoded JSON object in the query string
(`?{"limit": 10}`), list fields as JSON strings inside JSON bodies, and PHP SDK 3.x sends
form bodies; all of them must land in the same plain dict.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web


class ApiError(Exception):
    """An error reply: HTTP status plus a JSON body (SendPulse's `{message, error_code}`)."""

    def __init__(self, status: int, message: str, code: int | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.body: dict[str, Any] = {"message": message, "error_code": code or status, **extra}


class RawApiError(ApiError):
    """An error whose body is given whole (OAuth errors, chatbot `{success: false}`)."""

    def __init__(self, status: int, body: dict[str, Any]) -> None:
        Exception.__init__(self, str(body))
        self.status = status
        self.body = body


def query(request: web.Request) -> dict[str, Any]:
    """GET parameters: key=value pairs, or a JSON object making up the whole query string."""
    raw = request.rel_url.raw_query_string
    if raw:
        decoded = unquote_plus(raw).strip()
        if decoded.startswith("{"):
            try:
                blob = json.loads(decoded)
            except ValueError as exc:
                raise ApiError(400, "Malformed query string", 999) from exc
            if isinstance(blob, dict):
                return blob
    params: dict[str, Any] = {}
    for key in request.query:
        values = request.query.getall(key)
        name = key[:-2] if key.endswith("[]") else key
        params[name] = values if key.endswith("[]") or len(values) > 1 else values[0]
    return params


async def body(request: web.Request) -> dict[str, Any]:
    """A JSON or form body as a dict; an empty body is `{}`."""
    if not request.body_exists:
        return {}
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.post()
        return {key: form.getone(key) for key in form}
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "Malformed JSON body", 999) from exc
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object", 999)
    return data


def unjson(value: Any) -> Any:
    """A field that may come as a JSON string inside the JSON body (pysendpulse does this)."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
    return value


def as_list(value: Any) -> list[Any]:
    value = unjson(value)
    if value is None:
        return []
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        return list(value.values())
    return [value]


def as_int(value: Any, name: str, *, default: int | None = None) -> int:
    if value is None or value == "":
        if default is None:
            raise ApiError(400, f"The {name} field is required", 400)
        return default
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise ApiError(422, f"The {name} must be an integer.", 422) from exc


def as_bool(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def paging(
    params: dict[str, Any], *, default_limit: int = 100, max_limit: int | None = 100
) -> tuple[int, int]:
    """`limit`/`offset` checked the way SendPulse does: 422 past the maximum."""
    limit = as_int(params.get("limit"), "limit", default=default_limit)
    offset = as_int(params.get("offset"), "offset", default=0)
    if limit < 0:
        raise ApiError(422, "The limit must be at least 1.", 422)
    if limit == 0:
        # pysendpulse sends limit 0 to mean "the default" when the caller gave none.
        limit = default_limit
    if max_limit is not None and limit > max_limit:
        raise ApiError(422, f"The limit may not be greater than {max_limit}.", 422)
    if offset < 0:
        raise ApiError(422, "The offset must be at least 0.", 422)
    return limit, offset
