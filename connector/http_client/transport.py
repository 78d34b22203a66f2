"""One HTTP exchange with a provider: rate limit, timeout, and transport errors translated."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from multidict import CIMultiDictProxy

from connector.http_client.api_errors import TransportError
from connector.units import RateLimit

SPACING_MARGIN = 1.05
# The window a limiter keeps its last ``max_rate`` sends apart by, as a multiple of the
# period: the server counts arrivals, which a busy server or network moves by a few tens of
# milliseconds either way.
WINDOW_MARGIN = 1.1


class Slot:
    """One request let through by a :class:`WindowLimiter`, until it is known to be sent."""

    __slots__ = ("at", "pending")

    def __init__(self, at: float) -> None:
        self.at = at
        self.pending = True

    def sent(self, at: float) -> None:
        if self.pending:
            self.pending = False
            self.at = max(self.at, at)


class WindowLimiter(AsyncLimiter):
    """Even spacing, and never more than ``max_rate`` requests written in a (wider) period.

    Spacing alone is not enough: a request let through can still wait for a socket, a TLS
    handshake or a busy event loop and then go out right beside the next ones. So each
    request is also held until the ``max_rate``-th request before it has been written (as
    :func:`send_trace` reports, or else its answer came) at least one window ago; a request
    not yet written counts as being written now. However late requests leave, no window of
    the server's period sees more than ``max_rate`` of them.
    """

    def __init__(self, rate: RateLimit, margin: float = WINDOW_MARGIN) -> None:
        super().__init__(1, SPACING_MARGIN * rate.period / rate.max_rate)
        self.window = margin * rate.period
        self.size = max(1, int(rate.max_rate))
        self._sent: deque[Slot] = deque(maxlen=self.size)
        self._gate: asyncio.Lock | None = None

    async def reserve(self) -> Slot:
        """Wait for a turn; the caller must call ``sent`` on the slot (in a ``finally``)."""
        await super().acquire()
        if self._gate is None:
            self._gate = asyncio.Lock()
        async with self._gate:
            loop = asyncio.get_running_loop()
            while len(self._sent) == self.size:
                oldest = self._sent[0]
                now = loop.time()
                wait = (now if oldest.pending else oldest.at) + self.window - now
                if wait <= 0:
                    break
                await asyncio.sleep(wait)
            slot = Slot(loop.time())
            self._sent.append(slot)
        return slot

    async def acquire(self, amount: float = 1) -> None:
        # A caller that cannot report its send time is taken to send at once.
        slot = await self.reserve()
        slot.sent(asyncio.get_running_loop().time())


def make_limiter(rate: RateLimit) -> AsyncLimiter:
    """A limiter that never lets more than ``max_rate`` requests into any ``period`` window.

    aiolimiter's leaky bucket allows a burst of ``max_rate`` and then refills continuously,
    so a full bucket plus the refill can put up to twice the rate into one second. A bucket
    of one, refilled every ``period / max_rate`` seconds, spaces requests evenly instead,
    and a window over the last ``max_rate`` send times keeps delayed requests from
    bunching (see :class:`WindowLimiter`).
    """
    return WindowLimiter(rate)


async def _headers_sent(
    session: aiohttp.ClientSession,
    context: SimpleNamespace,
    params: aiohttp.TraceRequestHeadersSentParams,
) -> None:
    slot = context.trace_request_ctx
    if isinstance(slot, Slot):
        slot.sent(asyncio.get_running_loop().time())


def send_trace() -> aiohttp.TraceConfig:
    """Tells each request's limiter when its headers were written (give it to the session)."""
    trace = aiohttp.TraceConfig()
    trace.on_request_headers_sent.append(_headers_sent)
    return trace


def provider_connector() -> aiohttp.TCPConnector:
    """Sockets without aiohttp's shared cap of 100 (the limiters pace each connection).

    Every account talks to the same host; with a shared cap, requests let through by their
    limiters would queue for a socket and reach the server bunched together.
    """
    return aiohttp.TCPConnector(limit=0, limit_per_host=0)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes
    headers: CIMultiDictProxy[str]


def query_params(params: Mapping[str, Any] | None) -> list[tuple[str, str]] | None:
    """aiohttp wants strings; lists become repeated keys (``status[]=1&status[]=2``)."""
    if not params:
        return None
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        values = value if isinstance(value, list | tuple) else [value]
        for item in values:
            if isinstance(item, bool):
                pairs.append((key, "1" if item else "0"))
            else:
                pairs.append((key, str(item)))
    return pairs


async def send(
    session: aiohttp.ClientSession,
    limiter: AsyncLimiter,
    method: str,
    url: str,
    *,
    request_timeout: float,
    params: Mapping[str, Any] | None = None,
    json: Any = None,
    data: Mapping[str, str] | None = None,
    headers: Mapping[str, str] | None = None,
) -> Reply:
    """Wait for the limiter, send, read the whole body; failures become TransportError."""
    slot: Slot | None = None
    if isinstance(limiter, WindowLimiter):
        slot = await limiter.reserve()
    else:
        await limiter.acquire()
    try:
        async with session.request(
            method,
            url,
            params=query_params(params),
            json=json,
            data=data,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=request_timeout),
            allow_redirects=False,
            trace_request_ctx=slot,
        ) as response:
            if slot is not None:
                # Written by now at the latest (for a session without send_trace).
                slot.sent(asyncio.get_running_loop().time())
            body = await response.read()
            return Reply(response.status, body, response.headers)
    except TimeoutError as exc:
        raise TransportError(f"{method} {_path(url)} timed out after {request_timeout:g}s") from exc
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientError as exc:
        raise TransportError(f"{method} {_path(url)} failed: {type(exc).__name__}") from exc
    finally:
        if slot is not None:
            slot.sent(asyncio.get_running_loop().time())


def _path(url: str) -> str:
    # Only the path: a query may carry an email address, never worth a log line.
    return url.split("?", 1)[0]
