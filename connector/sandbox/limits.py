"""Per-client request accounting: the sliding-window rate limit, the quota and the log."""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request as the sandbox answered it (status 0: the connection was dropped or hung)."""

    method: str
    path: str
    query: str
    status: int
    at: float
    client_id: str | None
    # The request body as text ("" for none), for tests that assert exactly what was sent.
    body: str = ""


class Window:
    """Accepted-request times within the last `span` seconds, for one client."""

    __slots__ = ("span", "times")

    def __init__(self, span: float) -> None:
        self.span = span
        self.times: deque[float] = deque()

    def count(self, now: float) -> int:
        times = self.times
        while times and times[0] <= now - self.span:
            times.popleft()
        return len(times)


class Limits:
    """Rate limit (requests per second) and optional per-minute quota, per client.

    The check is a sliding window over the sandbox clock: at most `rate_limit` accepted
    requests in any `1 s` span, so a client can never see more 2xx answers than that.
    """

    def __init__(
        self,
        rate_limit: float | None = 10.0,
        per_minute: int | None = None,
        log_size: int = 200_000,
    ) -> None:
        self.rate_limit = rate_limit
        self.per_minute = per_minute
        self._second: dict[str, Window] = {}
        self._minute: dict[str, Window] = {}
        self.log: deque[RequestRecord] = deque(maxlen=log_size)
        self.counters: Counter[str | None] = Counter()

    def admit(self, client_id: str, now: float) -> str | None:
        """None when the request may go on, else which limit it hit: "second" or "minute"."""
        if self.rate_limit is not None:
            second = self._second.setdefault(client_id, Window(1.0))
            if second.count(now) >= self.rate_limit:
                return "second"
        if self.per_minute is not None:
            minute = self._minute.setdefault(client_id, Window(60.0))
            if minute.count(now) >= self.per_minute:
                return "minute"
        if self.rate_limit is not None:
            self._second[client_id].times.append(now)
        if self.per_minute is not None:
            self._minute[client_id].times.append(now)
        return None

    def record(self, record: RequestRecord) -> None:
        self.log.append(record)
        self.counters[record.client_id] += 1

    def requests(self, client_id: str | None = None) -> list[RequestRecord]:
        if client_id is None:
            return list(self.log)
        return [r for r in self.log if r.client_id == client_id]

    def reset(self) -> None:
        self.log.clear()
        self.counters.clear()
        self._second.clear()
        self._minute.clear()
