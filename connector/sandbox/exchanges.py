"""An exchange log: every API call and its answer, one JSON line each, for contract checks.

Off unless ``CONNECTOR_SANDBOX_RECORD`` names a file when the app is built. The test suite
sets it once for the whole session, so every sandbox the tests start (in this process or as
``connector sandbox`` in a child) appends to the same file, and the contract tests hold each
request and answer in it against SendPulse's published OpenAPI files.

A line: ``method``, ``path`` (as sent), ``query`` (raw), ``request_type``, ``request_body``,
``user_agent``, ``status``, ``response_type``, ``response_body``, ``fault`` (the scripted
fault that answered instead of the handler, if any). Bodies over ``MAX_BODY`` bytes are left
out (``*_body`` is null and ``truncated`` true). Control calls (``/_sandbox/``) are not logged.
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Middleware

RECORD_ENV = "CONNECTOR_SANDBOX_RECORD"
MAX_BODY = 1024 * 1024
# Set by the gateway when a scripted or random fault answered instead of the handler.
FAULT = web.RequestKey("sandbox_fault", str)
# Set when a path sent with a double slash was routed as the merged path.
PATH_AS_SENT = web.RequestKey("sandbox_path_as_sent", str)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def record_path() -> Path | None:
    """Where to append exchanges, from the environment; None when recording is off."""
    value = os.environ.get(RECORD_ENV, "").strip()
    return Path(value) if value else None


def _text(raw: bytes | None) -> tuple[str | None, bool]:
    if raw is None:
        return None, False
    if len(raw) > MAX_BODY:
        return None, True
    return raw.decode("utf-8", "replace"), False


def recorder(path: Path) -> Middleware:
    """A middleware that appends each API exchange to ``path`` (control calls excepted)."""

    @web.middleware
    async def record(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith("/_sandbox/"):
            return await handler(request)
        sent = await request.read() if request.body_exists else b""
        response = await handler(request)
        answer = response.body if isinstance(response, web.Response) else None
        request_body, big_request = _text(sent)
        response_body, big_response = _text(answer if isinstance(answer, bytes) else None)
        line: dict[str, Any] = {
            "method": request.method,
            "path": request.get(PATH_AS_SENT) or request.rel_url.raw_path,
            "query": request.rel_url.raw_query_string,
            "request_type": request.content_type if sent else None,
            "request_body": request_body,
            "user_agent": request.headers.get("User-Agent", ""),
            "status": response.status,
            "response_type": response.content_type,
            "response_body": response_body,
            "fault": request.get(FAULT),
            "truncated": big_request or big_response,
        }
        data = (json.dumps(line, separators=(",", ":")) + "\n").encode()
        # One write() per line on an O_APPEND file: lines from several processes (a test and
        # the `connector sandbox` it started) never interleave.
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
        return response

    return record
