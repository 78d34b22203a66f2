"""The egress policy on its own: which literal addresses are refused and why."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.egress import BLOCKED, EgressPolicy, EgressRefused

REFUSED = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback"),
    ("::1", "loopback"),
    ("10.1.2.3", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local"),
    ("100.64.0.1", "carrier-grade NAT"),
    ("100.127.255.255", "carrier-grade NAT"),
    ("0.0.0.0", "unspecified"),  # noqa: S104 - an address under test, not a bind
    ("0.1.2.3", "unspecified"),
    ("::", "unspecified"),
    ("fc00::1", "unique-local"),
    ("fd12:3456::1", "unique-local"),
    ("fe80::1", "link-local"),
    ("::ffff:127.0.0.1", "loopback"),
    ("::ffff:10.0.0.1", "private"),
    ("::ffff:169.254.169.254", "link-local"),
    ("64:ff9b::7f00:1", "loopback"),
    ("2002:7f00:1::", "loopback"),
    # IPv4-compatible (::a.b.c.d), local-use NAT64 and site-local: routed inward by some stacks.
    ("::7f00:1", "loopback"),
    ("::a00:1", "private"),
    ("::a9fe:a9fe", "link-local"),
    ("64:ff9b:1::7f00:1", "local NAT64"),
    ("64:ff9b:1::808:808", "local NAT64"),
    ("fec0::1", "site-local"),
    ("feff::1", "site-local"),
    # Teredo: the client address is the last 32 bits, inverted.
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "loopback"),
    ("224.0.0.1", "multicast"),
    ("192.0.2.10", "not a public"),
]

ALLOWED = ["93.184.215.14", "8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "172.32.0.1"]


@pytest.mark.parametrize(("host", "why"), REFUSED)
def test_non_public_addresses_are_refused(host: str, why: str) -> None:
    policy = EgressPolicy()
    reason = policy.refusal(host)
    assert reason is not None and why in reason
    with pytest.raises(EgressRefused, match=r"egress\.allow_networks"):
        policy.check(host)


@pytest.mark.parametrize("host", ALLOWED)
def test_public_addresses_pass(host: str) -> None:
    assert EgressPolicy().refusal(host) is None


def test_allow_list_opens_only_its_network() -> None:
    policy = EgressPolicy(["127.0.0.1/32", "10.5.0.0/16"])
    assert policy.refusal("127.0.0.1") is None
    assert policy.refusal("::ffff:127.0.0.1") is None
    assert policy.refusal("10.5.9.9") is None
    # Allow-listing one address must not open its neighbours (a GitLab bypass).
    assert policy.refusal("127.0.0.2") is not None
    assert policy.refusal("10.6.0.1") is not None
    assert policy.refusal("::1") is not None


def test_names_and_legacy_numeric_forms_are_not_addresses() -> None:
    # Only resolved addresses reach the policy; these must go through the resolver.
    for host in ("localhost", "2130706433", "0177.0.0.1", "0x7f.1"):
        reason = EgressPolicy().refusal(host)
        assert reason is not None and "not an IP address" in reason


ipv4s = st.integers(min_value=0, max_value=2**32 - 1).map(ipaddress.IPv4Address)
ipv6s = st.integers(min_value=0, max_value=2**128 - 1).map(ipaddress.IPv6Address)


def wrapped(inner: ipaddress.IPv4Address) -> list[str]:
    """The IPv6 forms that carry ``inner``: mapped, compatible, 6to4, NAT64, Teredo."""
    value = int(inner)
    return [
        f"::ffff:{inner}",
        str(ipaddress.IPv6Address(value)),
        str(ipaddress.IPv6Address((0x2002 << 112) | (value << 80))),
        str(ipaddress.IPv6Address((0x64FF9B << 96) | value)),
        str(ipaddress.IPv6Address((0x20010000 << 96) | (value ^ 0xFFFFFFFF))),
    ]


@given(ipv4s)
def test_an_ipv4_address_passes_only_if_it_is_global(address: ipaddress.IPv4Address) -> None:
    refused = EgressPolicy().refusal(str(address)) is not None
    assert refused == (not address.is_global or any(address in net for _, net in BLOCKED))


@given(ipv4s)
def test_no_ipv6_wrapping_lets_a_refused_ipv4_through(inner: ipaddress.IPv4Address) -> None:
    policy = EgressPolicy()
    if policy.refusal(str(inner)) is not None:
        for form in wrapped(inner):
            if form not in ("::", "::1"):
                assert policy.refusal(form) is not None, form


@given(ipv6s)
def test_an_ipv6_address_passes_only_if_it_and_what_it_wraps_are_global(
    address: ipaddress.IPv6Address,
) -> None:
    reason = EgressPolicy().refusal(str(address))
    if reason is None:
        assert address.is_global
        assert not any(address in net for _, net in BLOCKED if net.version == 6)
        for inner in (address.ipv4_mapped, address.sixtofour):
            assert inner is None or inner.is_global


@given(st.text(max_size=60))
def test_any_host_text_gets_an_answer_not_an_exception(host: str) -> None:
    policy = EgressPolicy(["10.0.0.0/8"])
    reason = policy.refusal(host)
    assert reason is None or isinstance(reason, str)


@given(ipv4s, st.integers(min_value=8, max_value=32))
def test_an_allowed_network_opens_exactly_its_addresses(
    address: ipaddress.IPv4Address, prefix: int
) -> None:
    network = ipaddress.ip_network(f"{address}/{prefix}", strict=False)
    policy = EgressPolicy([str(network)])
    assert policy.refusal(str(address)) is None
    outside = ipaddress.IPv4Address((int(network.broadcast_address) + 1) % 2**32)
    if outside not in network:
        assert policy.refusal(str(outside)) == EgressPolicy().refusal(str(outside))
