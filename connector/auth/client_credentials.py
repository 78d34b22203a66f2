"""SendPulse's client-credentials grant, for an account's API pair and for app installs."""

from __future__ import annotations

import json as jsonlib
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter

from connector.auth.tokens import CredentialsRefused, IssuedToken
from connector.http_client.api_errors import MalformedResponse, UnexpectedResponse, error_from_reply
from connector.http_client.api_retry import parse_retry_after
from connector.http_client.parsing import as_float, decode_json
from connector.http_client.transport import send

ACCOUNT_TOKEN_PATH = "/oauth/access_token"  # noqa: S105 - a URL path, not a secret
MARKET_TOKEN_PATH = "/oauth/access_token/market"  # noqa: S105 - a URL path
DEFAULT_TTL = 3600.0


async def fetch_client_credentials(
    session: aiohttp.ClientSession,
    limiter: AsyncLimiter,
    url: str,
    *,
    client_id: str,
    client_secret: str,
    request_timeout: float,
) -> IssuedToken:
    """POST the grant; a refusal of the credentials is :class:`CredentialsRefused`."""
    reply = await send(
        session,
        limiter,
        "POST",
        url,
        request_timeout=request_timeout,
        json={
            "grant_type": "client_credentials",
            "client_id": client_id,
            "client_secret": client_secret,
        },
    )
    if 200 <= reply.status < 300:
        return issued_token(decode_json(reply.body))
    body = _decode(reply.body)
    if reply.status in (400, 401, 403) and _oauth_error(body) in (
        "invalid_client",
        "unauthorized_client",
        "invalid_grant",
    ):
        raise CredentialsRefused(f"token endpoint refused the credentials ({_oauth_error(body)})")
    if reply.status == 401:
        raise CredentialsRefused("token endpoint answered 401")
    raise error_from_reply(
        reply.status, body, retry_after=parse_retry_after(reply.headers.get("Retry-After"))
    )


def issued_token(body: Any) -> IssuedToken:
    """Read ``{access_token, token_type, expires_in[, refresh_token]}`` leniently."""
    if body is None:
        raise MalformedResponse("token endpoint sent an empty body")
    if not isinstance(body, dict) or not isinstance(body.get("access_token"), str):
        raise UnexpectedResponse("token endpoint reply has no access_token")
    token = body["access_token"].strip()
    if not token:
        raise UnexpectedResponse("token endpoint sent an empty access_token")
    try:
        ttl = as_float(body.get("expires_in"))
    except ValueError:
        ttl = None
    refresh = body.get("refresh_token")
    return IssuedToken(
        access_token=token,
        expires_in=ttl if ttl and ttl > 0 else DEFAULT_TTL,
        refresh_token=refresh if isinstance(refresh, str) and refresh else None,
    )


def _decode(raw: bytes) -> Any:
    if not raw.strip():
        return None
    try:
        return jsonlib.loads(raw)
    except (ValueError, UnicodeDecodeError):
        return raw[:200].decode("utf-8", "replace")


def _oauth_error(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        return str(body["error"])
    return None
