"""The wire forms of SendPulse's PHP and Node SDKs, rebuilt in Python for the sandbox's tests.

Each helper sends a request byte for byte the way one SDK's transport does; the tests in
``test_sdk_forms_php.py`` and ``test_sdk_forms_node.py`` name the SDK function whose call
they repeat. Nothing here is taken from the SDKs: PHP's ``serialize`` and ``http_build_query``
are written from PHP's documented formats.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import urlencode

from tests.integration.sandbox.conftest import Api

JSON = {"Content-Type": "application/json"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}


async def send(
    api: Api, method: str, target: str, *, data: str | None = None, headers: dict[str, str]
) -> tuple[int, Any]:
    """One request with the caller's token, its exact body and headers; the answer decoded."""
    sent = {**headers, "Authorization": f"Bearer {api.token}"}
    url = f"{api.sb.base_url}{target}"
    async with api.session.request(method, url, data=data, headers=sent) as resp:
        text = await resp.text()
        try:
            return resp.status, json.loads(text)
        except ValueError:
            return resp.status, text


def php_serialize(value: Any) -> str:
    """PHP's ``serialize``: lists and dicts become arrays, strings count UTF-8 bytes."""
    if value is None:
        return "N;"
    if isinstance(value, bool):
        return f"b:{int(value)};"
    if isinstance(value, int):
        return f"i:{value};"
    if isinstance(value, float):
        return f"d:{value!r};"
    if isinstance(value, str):
        return f's:{len(value.encode("utf-8"))}:"{value}";'
    items = list(enumerate(value)) if isinstance(value, list) else list(value.items())
    inner = "".join(php_serialize(_php_key(key)) + php_serialize(item) for key, item in items)
    return f"a:{len(items)}:{{{inner}}}"


def _php_key(key: Any) -> Any:
    # PHP (and the Node SDK's port of serialize) store a numeric string key as an integer.
    return int(key) if isinstance(key, str) and key.isdigit() else key


def http_build_query(data: dict[str, Any]) -> str:
    """PHP's ``http_build_query``: nested keys in brackets, true/false as 1/0, null left out,
    RFC 1738 encoding (spaces as ``+``, brackets as ``%5B``/``%5D``)."""
    pairs: list[tuple[str, str]] = []

    def walk(prefix: str, value: Any) -> None:
        if value is None:
            return
        if isinstance(value, dict | list):
            items = enumerate(value) if isinstance(value, list) else value.items()
            for key, item in items:
                walk(f"{prefix}[{key}]", item)
        elif isinstance(value, bool):
            pairs.append((prefix, "1" if value else "0"))
        else:
            pairs.append((prefix, str(value)))

    for key, value in data.items():
        walk(str(key), value)
    return urlencode(pairs)


def php_json(value: Any) -> str:
    """PHP's ``json_encode`` with default flags: ``/`` escaped, non-ASCII as ``\\u`` escapes."""
    return json.dumps(value, separators=(",", ":")).replace("/", "\\/")


async def node_call(api: Api, method: str, path: str, data: dict[str, Any]) -> tuple[int, Any]:
    """The Node SDK's ``sendRequest``: ``'/' + path``, and the data as a JSON body whatever the
    method, GET included (api/sendpulse.js)."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return await send(api, method, "/" + path, data=text, headers=JSON)


async def php1_call(
    api: Api, method: str, path: str, data: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """The PHP SDK 1.x ``ApiClient::sendRequest``: ``$apiUrl . '/' . $path``, GET data in the
    query string, any other method's data as a form (curl's default content type)."""
    data = data or {}
    if method == "GET":
        suffix = f"?{http_build_query(data)}" if data else ""
        return await send(api, method, "/" + path + suffix, headers={})
    return await send(api, method, "/" + path, data=http_build_query(data), headers=FORM)


async def php2_call(
    api: Api, method: str, path: str, data: dict[str, Any] | list[Any] | None = None
) -> tuple[int, Any]:
    """The PHP SDK 2.x ``ApiClient::sendRequest``: GET data in the query string, any other
    method's data as ``json_encode($data)``, which is ``[]`` when there is none."""
    if method == "GET":
        query = http_build_query(data) if isinstance(data, dict) and data else ""
        return await send(api, method, "/" + path + (f"?{query}" if query else ""), headers=JSON)
    body = php_json(data if data else [])
    return await send(api, method, "/" + path, data=body, headers=JSON)


async def php3_call(
    api: Api,
    method: str,
    uri: str,
    query: dict[str, Any] | None = None,
    body: dict[str, Any] | None = None,
) -> tuple[int, Any]:
    """The PHP SDK 3.x ``Client::send`` of a generated operation: the query through
    ``http_build_query`` (nulls dropped first), a JSON body only when there is one."""
    kept = {k: v for k, v in (query or {}).items() if v is not None}
    target = uri + (f"?{http_build_query(kept)}" if kept else "")
    headers = {**JSON, "Accept": "application/json"}
    return await send(api, method, target, data=php_json(body) if body else None, headers=headers)
