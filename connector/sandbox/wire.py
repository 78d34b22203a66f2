"""What arrives on the wire, read leniently the way SendPulse's own SDKs send it.

pysendpulse sends GET parameters as one URL-encoded JSON object in the query string
(`?{"limit": 10}`) and list fields as JSON strings inside JSON bodies; the Node SDK sends GET
parameters as a JSON body and lists as serialized PHP arrays; the PHP SDK builds query strings
and (1.x) form bodies with `http_build_query`, whose nested keys look like
`variables[0][name]=...`, and its 3.x token call is a form. All of them land in the same
plain dict. Which SDK function sends which form: tests/integration/sandbox/test_sdk_forms*.py.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

from aiohttp import web

from connector.sandbox.phpserial import is_serialized_array, unserialize

# The request body as it arrived, kept by the gateway (which reads it for the request log) so
# that `query` can read the parameters the Node SDK puts in a GET's body without awaiting.
SENT = web.RequestKey("sandbox_sent", bytes)
_BRACKETED = re.compile(r"([^\[\]]+)((?:\[[^\[\]]*\])+)")
_INDEX = re.compile(r"\[([^\[\]]*)\]")


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
    """GET parameters: key=value pairs (PHP brackets nest), or a JSON object as the whole query
    string; parameters in a GET's JSON body (the Node SDK's form) come under both."""
    params = _get_body(request)
    raw = request.rel_url.raw_query_string
    if raw:
        decoded = unquote_plus(raw).strip()
        if decoded.startswith("{"):
            try:
                blob = json.loads(decoded)
            except ValueError as exc:
                raise ApiError(400, "Malformed query string", 999) from exc
            if isinstance(blob, dict):
                return {**params, **blob}
    params.update(nest(request.query.items()))
    return params


def _get_body(request: web.Request) -> dict[str, Any]:
    sent = request.get(SENT) if request.method == "GET" else None
    if not sent or not sent.strip():
        return {}
    try:
        data = json.loads(sent)
    except ValueError as exc:
        raise ApiError(400, "Malformed JSON body", 999) from exc
    if data == []:
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object", 999)
    return data


def nest(pairs: Iterable[tuple[str, Any]]) -> dict[str, Any]:
    """Key=value pairs as PHP reads them: `a[0][b]=1` is `{"a": [{"b": "1"}]}`, `a[]=1&a[]=2`
    and a repeated `a=1&a=2` are lists, and a level keyed 0..N-1 in order is a list."""
    tree: dict[str, Any] = {}
    for key, value in pairs:
        match = _BRACKETED.fullmatch(key)
        if match is None:
            if key in tree:
                kept = tree[key]
                tree[key] = [*(kept if isinstance(kept, list) else [kept]), value]
            else:
                tree[key] = value
            continue
        names = [match[1], *_INDEX.findall(match[2])]
        node = tree
        for name in names[:-1]:
            slot = name or str(len(node))
            child = node.get(slot)
            if not isinstance(child, dict):
                child = node[slot] = {}
            node = child
        node[names[-1] or str(len(node))] = value
    return {key: _listed(value) for key, value in tree.items()}


def _listed(node: Any) -> Any:
    if not isinstance(node, dict):
        return node
    items = {key: _listed(value) for key, value in node.items()}
    if list(items) == [str(i) for i in range(len(items))]:
        return list(items.values())
    return items


async def payload(request: web.Request) -> dict[str, Any] | list[Any]:
    """A JSON or form body as sent: an object (a dict), or a top-level list; empty is `{}`."""
    if not request.body_exists:
        return {}
    ctype = request.content_type
    if ctype in ("application/x-www-form-urlencoded", "multipart/form-data"):
        tree = nest((await request.post()).items())
        # PHP's http_build_query of a bare list: `0=a&1=b`.
        listed = _listed(tree)
        return listed if isinstance(listed, list) and listed else tree
    text = await request.text()
    if not text.strip():
        return {}
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "Malformed JSON body", 999) from exc
    if not isinstance(data, dict | list):
        raise ApiError(400, "The body must be a JSON object", 999)
    return data


async def body(request: web.Request) -> dict[str, Any]:
    """A JSON or form body as a dict; an empty body is `{}`."""
    data = await payload(request)
    if data == []:
        # PHP's json_encode of an empty array, which the PHP SDK 2.x sends with every call
        # that has no parameters (`delete('campaigns/1')`).
        return {}
    if not isinstance(data, dict):
        raise ApiError(400, "The body must be a JSON object", 999)
    return data


def unjson(value: Any) -> Any:
    """A field that may come as a string holding JSON (pysendpulse, the PHP SDK's `json_encode`)
    or a serialized PHP array (the Node SDK's and PHP SDK's `serialize`); else as it is."""
    if isinstance(value, str):
        stripped = value.strip()
        if stripped[:1] in ("[", "{"):
            try:
                return json.loads(stripped)
            except ValueError:
                return value
        if is_serialized_array(stripped):
            try:
                return unserialize(stripped)
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
