"""The SSRF guard for outgoing webhooks: only public addresses, unless allow-listed.

The check runs on the addresses actually connected to, not on the URL when it is saved:
a resolver refuses a host name if any address it resolves to is not public (so DNS
rebinding cannot slip in a private one), and the socket factory refuses every connect to
a non-public address (this also covers literal IPs, which aiohttp never resolves).
Redirects are not followed by the webhook action, so they cannot lead inward either.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable, Sequence
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult
from aiohttp.resolver import DefaultResolver

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# Named so the refusal message can say why; anything else that is not globally routable
# (``is_global`` false: documentation ranges, benchmarking, reserved) is refused too.
BLOCKED: tuple[tuple[str, IPNetwork], ...] = tuple(
    (why, ipaddress.ip_network(net))
    for why, net in (
        ("unspecified", "0.0.0.0/8"),
        ("loopback", "127.0.0.0/8"),
        ("private", "10.0.0.0/8"),
        ("private", "172.16.0.0/12"),
        ("private", "192.168.0.0/16"),
        ("link-local", "169.254.0.0/16"),
        ("carrier-grade NAT", "100.64.0.0/10"),
        ("multicast", "224.0.0.0/4"),
        ("reserved", "240.0.0.0/4"),
        ("unspecified", "::/128"),
        ("loopback", "::1/128"),
        ("unique-local", "fc00::/7"),
        ("link-local", "fe80::/10"),
        # Deprecated, but still routed inside some sites (RFC 3879).
        ("site-local", "fec0::/10"),
        # Local-use NAT64 (RFC 8215): translated to whatever IPv4 the local gateway serves.
        ("local NAT64", "64:ff9b:1::/48"),
        ("multicast", "ff00::/8"),
    )
)


class EgressRefused(OSError):
    """A connection to a non-public address was refused (an OSError so aiohttp wraps it)."""


IPV4_COMPATIBLE = ipaddress.ip_network("::/96")
NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.sixtofour is not None:
            return address.sixtofour
        if address.teredo is not None:
            return address.teredo[1]
        # NAT64 and the deprecated IPv4-compatible form (::a.b.c.d, which some stacks still
        # route as IPv4) carry an IPv4 address in their last 32 bits.
        if address in NAT64 or address in IPV4_COMPATIBLE:
            return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class EgressPolicy:
    """Which addresses outgoing webhooks may connect to."""

    def __init__(self, allow_networks: Iterable[str] = ()) -> None:
        self.allow: tuple[IPNetwork, ...] = ()
        self.use(allow_networks)

    def use(self, allow_networks: Iterable[str]) -> None:
        """Replace the allow-list (a reload); the next connect sees it, open ones stay."""
        self.allow = tuple(ipaddress.ip_network(n, strict=False) for n in allow_networks)

    def _allowed(self, address: IPAddress) -> bool:
        return any(address.version == net.version and address in net for net in self.allow)

    def refusal(self, host: str) -> str | None:
        """Why connecting to the literal address ``host`` is refused, or None if it is fine."""
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return f"{host!r} is not an IP address"
        inner = _embedded_ipv4(address)
        candidates = [address] if inner is None else [address, inner]
        if any(self._allowed(c) for c in candidates):
            return None
        for candidate in candidates:
            for why, net in BLOCKED:
                if candidate.version == net.version and candidate in net:
                    return f"{host} is a {why} address"
        if inner is not None and not inner.is_global:
            return f"{host} embeds the non-public address {inner}"
        if not address.is_global:
            return f"{host} is not a public address"
        return None

    def check(self, host: str) -> None:
        reason = self.refusal(host)
        if reason is not None:
            raise EgressRefused(
                f"refused to connect: {reason} (allow it with egress.allow_networks)"
            )


class GuardedResolver(AbstractResolver):
    """Resolves with the default resolver, then refuses names with any non-public address."""

    def __init__(self, policy: EgressPolicy, inner: AbstractResolver | None = None) -> None:
        self.policy = policy
        self._inner = inner

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        if self._inner is None:
            self._inner = DefaultResolver()
        results = await self._inner.resolve(host, port, family)
        for result in results:
            self.policy.check(result["host"])
        return results

    async def close(self) -> None:
        if self._inner is not None:
            await self._inner.close()


def _socket_factory(policy: EgressPolicy) -> Any:
    def create(addr_info: Sequence[Any]) -> socket.socket:
        family, type_, proto, _canon, sockaddr = addr_info
        policy.check(str(sockaddr[0]))
        sock = socket.socket(family=family, type=type_, proto=proto)
        sock.setblocking(False)
        return sock

    return create


def guarded_connector(policy: EgressPolicy, **kwargs: Any) -> aiohttp.TCPConnector:
    """A TCP connector that only connects where ``policy`` allows."""
    return aiohttp.TCPConnector(
        resolver=GuardedResolver(policy),
        socket_factory=_socket_factory(policy),
        **kwargs,
    )


def guarded_session(policy: EgressPolicy, **kwargs: Any) -> aiohttp.ClientSession:
    """The session webhook actions use; proxies from the environment are ignored."""
    connector_kwargs = {"limit": kwargs.pop("limit", 100)}
    return aiohttp.ClientSession(
        connector=guarded_connector(policy, **connector_kwargs),
        trust_env=False,
        **kwargs,
    )


def refused_by_egress(exc: BaseException) -> EgressRefused | None:
    """The :class:`EgressRefused` behind an aiohttp connection error, if that was the cause."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, EgressRefused):
            return current
        os_error = getattr(current, "os_error", None)
        if isinstance(os_error, EgressRefused):
            return os_error
        current = current.__cause__ or current.__context__
    return None
