"""``webhook``: POST the event as JSON, signed per the Standard Webhooks spec."""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass
from datetime import UTC, timedelta
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

import aiohttp
import yarl
from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from connector.egress import refused_by_egress
from connector.errors import FatalError, RetriableError, SignatureInvalid
from connector.http_client.api_retry import parse_retry_after
from connector.plugins import Action, ActionContext, ActionResult, PluginParams, StoredEvent
from connector.templates import AS_URL, is_template
from connector.units import Duration, check_timeout
from connector.webhook_signing import MIN_SECRET_BYTES, secret_key, sign_headers

RESPONSE_LIMIT = 300
# Bytes of the receiver's answer read at most: enough for RESPONSE_LIMIT characters.
RESPONSE_READ_LIMIT = 4096
# Ours to set: a user's extra header must not replace the signature or the body's type.
RESERVED_HEADERS = frozenset(
    {"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "host"}
)


class Params(PluginParams):
    # A template (``https://x/{{ event.id }}``) is checked once rendered; its values are
    # percent-encoded, so event data cannot reach the URL's structure.
    url: Annotated[str, AS_URL]
    # Several secrets sign at once while one is being rotated; each signature is sent.
    secret: SecretStr | list[SecretStr]
    timeout: Duration = timedelta(seconds=15)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        if is_template(value):
            return value
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be an http:// or https:// URL with a host")
        return str(AnyHttpUrl(value))

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        # A receiver that takes longer than this holds a delivery slot for nothing.
        return check_timeout(value, timedelta(minutes=5))

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        secrets = value if isinstance(value, list) else [value]
        if not secrets:
            raise ValueError("at least one secret is needed")
        for secret in secrets:
            # Checked whole here: a secret that only fails when signing would be retried
            # for the whole retry schedule instead of failing `connector check`.
            try:
                key = secret_key(secret.get_secret_value())
            except SignatureInvalid as exc:
                raise ValueError(f"{exc} (make one with: connector secret webhook)") from None
            if len(key) < MIN_SECRET_BYTES:
                raise ValueError(
                    f"a webhook secret needs at least {MIN_SECRET_BYTES} bytes after 'whsec_' "
                    f"(this one has {len(key)}; make one with: connector secret webhook)"
                )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if name.lower() in RESERVED_HEADERS:
                raise ValueError(f"header {name!r} is set by the connector")
        return value

    def log_secrets(self) -> list[str]:
        """What of the URL to scrub from every log line: a URL that carries a secret.

        A plain receiver URL (``http://127.0.0.1:8526/hooks/demo``) is what an operator
        needs to see; one with a password, a query or a token-like path is hidden whole.
        """
        parts = urlsplit(self.url)
        rest = parts.path + (f"?{parts.query}" if parts.query else "")
        if parts.password or _secret_looking(rest):
            return [self.url, rest]
        return []

    def secret_values(self) -> list[str]:
        secrets = self.secret if isinstance(self.secret, list) else [self.secret]
        return [s.get_secret_value() for s in secrets]


class WebhookRetriable(RetriableError):
    """The receiver answered with a status that may change (429, 5xx, other 4xx, 3xx)."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None,
        detail: str | None,
        retry_after: float | None,
    ) -> None:
        super().__init__(message, retry_after=retry_after)
        self.status_code = status_code
        self.detail = detail


class WebhookGone(FatalError):
    """The receiver answered 410 Gone: it wants no more deliveries."""

    def __init__(self, message: str, *, status_code: int, detail: str | None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.detail = detail


def body_for(event: StoredEvent, *, test: bool = False) -> bytes:
    """The JSON body: the event's type, time and ids, and its payload under ``data``."""
    when = event.occurred_at or event.created_at
    document: dict[str, Any] = {
        "type": event.trigger,
        "timestamp": when.astimezone(UTC).isoformat().replace("+00:00", "Z"),
        "flow": event.flow,
        "event_id": event.id,
        "item_key": event.item_key,
        "data": event.payload,
    }
    if test:
        document["test"] = True
    return json.dumps(document, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def origin(url: str) -> str:
    """``scheme://host[:port]`` of ``url``: what logs and summaries may show of it.

    Slack- and Zapier-style URLs carry their secret in the path or query, and userinfo is a
    password, so neither is ever written down.
    """
    parts = urlsplit(url)
    host = parts.hostname or "?"
    if ":" in host:
        host = f"[{host}]"
    try:
        port = parts.port
    except ValueError:
        port = None
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _secret_looking(path_and_query: str) -> bool:
    path, _, query = path_and_query.partition("?")
    segments = [s for s in path.split("/") if s]
    # Tokens are long or number-heavy (Slack's T0123/B0456/xyz…, Zapier's /catch/123456/…);
    # a plain "/v1/events" is not worth redacting from every log line.
    return bool(query) or any(len(s) >= 16 or sum(c.isdigit() for c in s) >= 4 for s in segments)


def _without_url(text: str, url: str) -> str:
    """``text`` with ``url`` (as written or as yarl normalised it) cut down to its origin."""
    forms = {url}
    try:
        forms.add(str(yarl.URL(url)))
    except ValueError:
        pass
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, origin(url))
    parts = urlsplit(url)
    rest = parts.path + (f"?{parts.query}" if parts.query else "")
    if len(rest) > 1:
        text = text.replace(rest, "/…")
    return text


async def _head_of(response: aiohttp.ClientResponse) -> str:
    """The start of the body, for the attempt's detail; the rest is never read.

    A receiver may answer with any amount of data: reading it all would hold it in memory.
    The connection is closed instead of drained, so nothing more comes in.
    """
    head = b""
    while len(head) < RESPONSE_READ_LIMIT:
        chunk = await response.content.read(RESPONSE_READ_LIMIT - len(head))
        if not chunk:
            break
        head += chunk
    if not response.content.at_eof():
        response.close()
    try:
        return head.decode(response.charset or "utf-8", errors="replace")
    except LookupError:
        return head.decode("utf-8", errors="replace")


def _snippet(text: str) -> str:
    text = text.strip().replace("\n", " ")
    return text if len(text) <= RESPONSE_LIMIT else text[:RESPONSE_LIMIT] + "…"


@dataclass(frozen=True, slots=True)
class _Fixed:
    """What a delivery needs of its params that does not depend on the event."""

    # None when the URL is fine; else why it is not (naming only its scheme).
    refused: str | None
    target: str
    headers: dict[str, str]
    secrets: list[str]
    timeout: aiohttp.ClientTimeout


def _fixed(params: Params) -> _Fixed:
    """Worked out once per params object: parsing the URL cost a few percent of a delivery.

    Keyed by identity (params holding a dict are unhashable), checked against a weak
    reference so that a reused id is no hit; rendered params are new objects, so a templated
    URL is parsed at each delivery as before.
    """
    known = _fixed_by_id.get(id(params))
    if known is not None and known[0]() is params:
        return known[1]
    parts = urlsplit(params.url)
    refused = None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        refused = f"the rendered url is not an http(s) URL with a host (scheme {parts.scheme!r})"
    fixed = _Fixed(
        refused=refused,
        target=origin(params.url),
        headers=dict(params.headers),
        secrets=params.secret_values(),
        timeout=aiohttp.ClientTimeout(total=params.timeout.total_seconds()),
    )
    if len(_fixed_by_id) >= _FIXED_MAX:
        _fixed_by_id.clear()
    _fixed_by_id[id(params)] = (weakref.ref(params), fixed)
    return fixed


_fixed_by_id: dict[int, tuple[weakref.ref[Params], _Fixed]] = {}
_FIXED_MAX = 4096


class Webhook(Action[Params]):
    """POST the event to a URL, signed, with the delivery id as ``webhook-id``."""

    key: ClassVar[str] = "webhook"
    summary = "POST the event as signed JSON"

    async def run(self, ctx: ActionContext, event: StoredEvent, params: Params) -> ActionResult:
        """POST once; 2xx delivered, 410 fatal, anything else retried."""
        assert isinstance(params, Params)  # noqa: S101 - the dispatcher validated them
        fixed = _fixed(params)
        if fixed.refused is not None:
            # The URL itself may carry a secret; its scheme alone says what is wrong.
            raise FatalError(fixed.refused)
        body = body_for(event, test=ctx.test)
        now = ctx.clock()
        headers = {
            **fixed.headers,
            **sign_headers(fixed.secrets, ctx.delivery_id, int(now.timestamp()), body),
            "content-type": "application/json",
            "user-agent": "sendpulse-connector",
        }
        if ctx.test:
            headers["webhook-test"] = "true"
        target = fixed.target
        timeout = fixed.timeout
        try:
            async with ctx.http.post(
                params.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
            ) as response:
                status = response.status
                text = _snippet(await _head_of(response))
                retry_after = response.headers.get("Retry-After")
        # aiohttp's InvalidURL is a ValueError; yarl raises plain ValueErrors (bad IDNA).
        # Their messages quote the whole URL, so only its origin is named.
        except ValueError:
            raise FatalError(f"invalid url for {target}") from None
        # aiohttp's timeouts are ClientErrors too; they are named here first.
        except TimeoutError:
            raise WebhookRetriable(
                f"POST {target} timed out after {params.timeout.total_seconds():g}s",
                status_code=None,
                detail=None,
                retry_after=None,
            ) from None
        except (aiohttp.ClientError, OSError) as exc:
            refused = refused_by_egress(exc)
            if refused is not None:
                raise FatalError(str(refused)) from None
            raise WebhookRetriable(
                f"POST {target} failed: {type(exc).__name__}: {_without_url(str(exc), params.url)}",
                status_code=None,
                detail=None,
                retry_after=None,
            ) from None
        if 200 <= status < 300:
            return ActionResult(
                summary=f"POST {target} → {status}", status_code=status, detail=text
            )
        if status == 410:
            raise WebhookGone(f"POST {target} → 410 Gone", status_code=status, detail=text)
        if 300 <= status < 400:
            message = f"POST {target} → {status} (redirects are not followed)"
        else:
            message = f"POST {target} → {status}"
        raise WebhookRetriable(
            message,
            status_code=status,
            detail=text,
            retry_after=parse_retry_after(retry_after, now=now),
        )
