"""One HTTP exchange with a provider: rate limit, timeout, and transport errors translated."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from aiolimiter import AsyncLimiter
from multidict import CIMultiDictProxy

from connector.providers.errors import TransportError
from connector.units import RateLimit

SPACING_MARGIN = 1.05


def make_limiter(rate: RateLimit) -> AsyncLimiter:
    """A limiter that never lets more than ``max_rate`` requests into any ``period`` window.

    aiolimiter's leaky bucket allows a burst of ``max_rate`` and then refills continuously,
    so a full bucket plus the refill can put up to twice the rate into one second. A bucket
    of one, refilled every ``period / max_rate`` seconds, spaces requests evenly instead.
    The spacing is 5% wider than the bare figure because the server counts arrivals, and a
    request delayed on our side (a busy event loop, a slow connect) must not land in the
    same window as the ones after it.
    """
    return AsyncLimiter(1, SPACING_MARGIN * rate.period / rate.max_rate)


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
        ) as response:
            body = await response.read()
            return Reply(response.status, body, response.headers)
    except TimeoutError as exc:
        raise TransportError(f"{method} {_path(url)} timed out after {request_timeout:g}s") from exc
    except asyncio.CancelledError:
        raise
    except aiohttp.ClientError as exc:
        raise TransportError(f"{method} {_path(url)} failed: {type(exc).__name__}") from exc


def _path(url: str) -> str:
    # Only the path: a query may carry an email address, never worth a log line.
    return url.split("?", 1)[0]
