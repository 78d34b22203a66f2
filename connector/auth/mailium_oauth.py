"""Mailium/Sendloop OAuth calls (reference §9): authorize URL, code and refresh grants,
revoke, and the resource-owner lookup that tells which account (``accid``) installed us."""

from __future__ import annotations

import base64
import hashlib
import json as jsonlib
import secrets
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiolimiter import AsyncLimiter

from connector.auth.client_credentials import issued_token
from connector.auth.tokens import CredentialsRefused, IssuedToken
from connector.http_client.api_errors import UnexpectedResponse, error_from_reply
from connector.http_client.api_retry import parse_retry_after
from connector.http_client.parsing import decode_json
from connector.http_client.transport import Reply, send

DEFAULT_OAUTH_URL = "https://oauth.mailium.net"
# Errors on which the vendor's own client wipes its token: the grant is gone for good.
_DEAD_GRANT = ("invalid_grant", "invalid_client", "invalid_request", "access_denied")


def new_pkce() -> tuple[str, str]:
    """A (verifier, S256 challenge) pair for one login."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def authorize_url(
    oauth_url: str,
    *,
    client_id: str,
    redirect_uri: str,
    scopes: list[str],
    state: str,
    code_challenge: str | None,
) -> str:
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": " ".join(scopes),
        "state": state,
    }
    if code_challenge:
        params |= {"code_challenge": code_challenge, "code_challenge_method": "S256"}
    return f"{oauth_url.rstrip('/')}/oauth/authorize?{urlencode(params)}"


class MailiumOAuth:
    """The OAuth endpoints of one Mailium-style server, for one app's credentials."""

    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        limiter: AsyncLimiter,
        oauth_url: str,
        client_id: str,
        client_secret: str,
        timeout: float = 30.0,
    ) -> None:
        self._session = session
        self._limiter = limiter
        self.oauth_url = oauth_url.rstrip("/")
        self.client_id = client_id
        self._secret = client_secret
        self._timeout = timeout

    async def _post(self, path: str, body: dict[str, Any]) -> Reply:
        return await send(
            self._session,
            self._limiter,
            "POST",
            self.oauth_url + path,
            request_timeout=self._timeout,
            json={"client_id": self.client_id, "client_secret": self._secret, **body},
        )

    def _token_reply(self, reply: Reply) -> IssuedToken:
        if 200 <= reply.status < 300:
            return issued_token(decode_json(reply.body))
        body = _lenient(reply.body)
        error = body.get("error") if isinstance(body, dict) else None
        if reply.status in (400, 401, 403) and error in _DEAD_GRANT:
            raise CredentialsRefused(f"the OAuth server refused the grant ({error})")
        raise error_from_reply(
            reply.status, body, retry_after=parse_retry_after(reply.headers.get("Retry-After"))
        )

    async def exchange_code(
        self, code: str, *, redirect_uri: str, code_verifier: str | None, scopes: list[str]
    ) -> IssuedToken:
        body: dict[str, Any] = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": redirect_uri,
            "scope": " ".join(scopes),
        }
        if code_verifier:
            body["code_verifier"] = code_verifier
        return self._token_reply(await self._post("/oauth/token", body))

    async def refresh(self, refresh_token: str | None) -> IssuedToken:
        if not refresh_token:
            raise CredentialsRefused("no refresh token is stored; install the app again")
        body = {"grant_type": "refresh_token", "refresh_token": refresh_token}
        return self._token_reply(await self._post("/oauth/token", body))

    async def revoke(self, token: str) -> None:
        reply = await self._post("/oauth/revoke", {"token": token})
        if not 200 <= reply.status < 300:
            raise error_from_reply(reply.status, _lenient(reply.body))

    async def account_id(self, access_token: str) -> str:
        """The installing account's id (``acc_id``) from ``GET /resource``."""
        reply = await send(
            self._session,
            self._limiter,
            "GET",
            self.oauth_url + "/resource",
            request_timeout=self._timeout,
            headers={"Authorization": f"Bearer {access_token}"},
        )
        if not 200 <= reply.status < 300:
            raise error_from_reply(reply.status, _lenient(reply.body))
        body = decode_json(reply.body)
        found = _find_account(body)
        if found is None:
            raise UnexpectedResponse("the resource owner reply carries no acc_id")
        return found


def _find_account(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("acc_id", "accid", "AccountID"):
            value = body.get(key)
            if isinstance(value, str | int) and not isinstance(value, bool) and str(value):
                return str(value)
        for value in body.values():
            found = _find_account(value)
            if found is not None:
                return found
    return None


def _lenient(raw: bytes) -> Any:
    try:
        return jsonlib.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError):
        return raw[:200].decode("utf-8", "replace")
