"""The egress policy on its own: which literal addresses are refused and why."""

from __future__ import annotations

import pytest

from connector.egress import EgressPolicy, EgressRefused

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
