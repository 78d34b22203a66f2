"""Mailium/Sendloop request signatures against an independent implementation of the spec."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from connector.auth.mailium_signing import (
    canonical,
    parse_query,
    sign_query,
    verify_query,
)
from connector.errors import SignatureInvalid
from connector.sandbox import vendor_signing
from connector.sandbox.vendor_signing import reference_canonical, wire

SECRET = "app-secret-ÿ-42"
NOW = datetime(2026, 1, 10, 12, 0, 0, tzinfo=UTC)
TS = str(int(NOW.timestamp()))


# The independent implementation, written from the documented steps; the sandbox signs with it.
def reference_hmac(params: dict[str, str], secret: str = SECRET) -> str:
    return vendor_signing.reference_hmac(params, secret)


def php_key(key: str) -> str:
    """What PHP's parse_str makes of a key: the form the sender must have signed."""
    return key.lstrip(" ").replace(" ", "_").replace(".", "_")


def signed(params: dict[str, str], *, space: str = "+", secret: str = SECRET) -> str:
    as_received = {php_key(k): v for k, v in params.items()}
    return wire({**params, "hmac": reference_hmac(as_received, secret)}, space=space)


def test_canonical_form_of_a_hand_worked_vector() -> None:
    params = {"timestamp": TS, "note": "a b+c%d&e=f", "accid": "42"}
    expected = f"accid=42&note=a+b%2Bc%2525d%2526e%3Df&timestamp={TS}"
    assert canonical(params) == expected
    assert reference_canonical(params) == expected


def test_canonical_escapes_equals_in_keys_and_encodes_non_ascii_and_tilde() -> None:
    params = {"k=1": "v", "ünï": "çødé ~", "hmac": "ignored"}
    assert canonical(params) == "k%253D1=v&%C3%BCn%C3%AF=%C3%A7%C3%B8d%C3%A9+%7E"


@pytest.mark.parametrize("space", ["+", "%20"])
def test_a_vector_signed_independently_verifies(space: str) -> None:
    params = {
        "accid": "1001",
        "timestamp": TS,
        "shop name": "Ünïcödé & Sons = 100% +fun",
        "code": "abc.def~ghi",
        "state": "s/t?a=t&e",
    }
    query = signed(params, space=space)
    verified = verify_query(query, SECRET, now=NOW)
    # parse_str turns the space in the key into "_"; the signature covers that form.
    assert verified["shop_name"] == "Ünïcödé & Sons = 100% +fun"
    assert verified["state"] == "s/t?a=t&e"
    assert "hmac" not in verified


def test_our_signing_is_verified_by_the_reference() -> None:
    params = {"accid": "7", "note": "x y&z=%"}
    query = sign_query(params, SECRET, now=NOW)
    parsed = parse_query(query)
    given_hmac = parsed.pop("hmac")
    assert given_hmac == reference_hmac(parsed)
    assert parsed == {"accid": "7", "note": "x y&z=%", "timestamp": TS}


@pytest.mark.parametrize(
    "tamper",
    [
        lambda q: q.replace("accid=1001", "accid=1002"),
        lambda q: q + "&extra=1",
        lambda q: q.replace("code=abc&", ""),
        lambda q: q.replace(f"timestamp={TS}", f"timestamp={int(TS) - 1}"),
        lambda q: q[:-1] + ("0" if q[-1] != "0" else "1"),
        lambda q: q.replace("hmac=", "hmac=0")[:-1],
    ],
    ids=["value", "added", "dropped", "timestamp", "hmac-byte", "hmac-shifted"],
)
def test_any_tampering_fails(tamper: object) -> None:
    query = signed({"accid": "1001", "code": "abc", "timestamp": TS})
    verify_query(query, SECRET, now=NOW)
    with pytest.raises(SignatureInvalid):
        verify_query(tamper(query), SECRET, now=NOW)  # type: ignore[operator]


def test_a_wrong_secret_fails_and_a_rotation_secret_passes() -> None:
    query = signed({"accid": "1", "timestamp": TS}, secret="old-secret")
    with pytest.raises(SignatureInvalid, match="does not match"):
        verify_query(query, SECRET, now=NOW)
    assert verify_query(query, SECRET, now=NOW, secrets=("old-secret",))["accid"] == "1"


@pytest.mark.parametrize(
    "query",
    [
        f"accid=1&accid=2&timestamp={TS}",
        f"a.b=1&a_b=2&timestamp={TS}",
        f"a+b=1&a_b=2&timestamp={TS}",
    ],
)
def test_duplicate_keys_are_rejected(query: str) -> None:
    with pytest.raises(SignatureInvalid, match="twice"):
        verify_query(query + "&hmac=" + "0" * 64, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("query", "message"),
    [
        (f"accid=1&timestamp={TS}", "not signed"),
        ("accid=1&hmac=" + "a" * 64, "timestamp"),
        (f"accid=1&timestamp=soon&hmac={'a' * 64}", "timestamp"),
        (f"accid=1&timestamp={TS}&hmac=xyz", "hex"),
        (f"accid=1&timestamp={TS}&hmac={'é' * 64}", "hex"),
        (f"ids[]=1&timestamp={TS}&hmac={'a' * 64}", "array"),
        (f"accid=%FF&timestamp={TS}&hmac={'a' * 64}", "UTF-8"),
    ],
)
def test_malformed_signed_queries_are_rejected(query: str, message: str) -> None:
    with pytest.raises(SignatureInvalid, match=message):
        verify_query(query, SECRET, now=NOW)


@pytest.mark.parametrize(
    ("offset", "ok"),
    [(-301, False), (-299, True), (0, True), (299, True), (301, False)],
)
def test_freshness_window_both_directions(offset: int, ok: bool) -> None:
    stamp = str(int(NOW.timestamp()) + offset)
    query = signed({"accid": "1", "timestamp": stamp})
    if ok:
        assert verify_query(query, SECRET, now=NOW)["timestamp"] == stamp
    else:
        with pytest.raises(SignatureInvalid, match="timestamp"):
            verify_query(query, SECRET, now=NOW)


def test_window_is_configurable() -> None:
    query = signed({"accid": "1", "timestamp": str(int(NOW.timestamp()) - 3600)})
    with pytest.raises(SignatureInvalid):
        verify_query(query, SECRET, now=NOW)
    assert verify_query(query, SECRET, now=NOW, window=timedelta(hours=2))["accid"] == "1"


keys = st.text(
    alphabet=st.characters(blacklist_characters=".[] ", blacklist_categories=("Cs",)),
    min_size=1,
    max_size=8,
).filter(lambda k: k not in ("hmac", "timestamp"))
values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@settings(max_examples=200)
@given(st.dictionaries(keys, values, max_size=6))
def test_round_trip_and_agreement_with_the_reference(params: dict[str, str]) -> None:
    full = {**params, "timestamp": TS}
    assert canonical(full) == reference_canonical(full)
    assert verify_query(signed(full), SECRET, now=NOW) == full
    assert verify_query(sign_query(params, SECRET, now=NOW), SECRET, now=NOW) == full


@settings(max_examples=300)
@given(st.text(max_size=200))
def test_arbitrary_queries_either_verify_or_raise_signature_invalid(raw: str) -> None:
    try:
        verify_query(raw, SECRET, now=NOW)
    except SignatureInvalid:
        pass
    else:  # pragma: no cover - a random string carrying a valid hmac is not expected
        pytest.fail(f"{raw!r} verified")


any_keys = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=8)
any_values = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=16)


@given(st.dictionaries(any_keys, any_values, max_size=6), st.randoms(use_true_random=False))
def test_canonical_form_ignores_order_and_the_hmac(params: dict[str, str], rnd: Any) -> None:
    items = list(params.items())
    rnd.shuffle(items)
    assert canonical(dict(items)) == canonical(params)
    assert canonical({**params, "hmac": "f" * 64}) == canonical(
        {k: v for k, v in params.items() if k != "hmac"}
    )
    # Plain ASCII, "&" and "=" only as separators: what is signed cannot be misread.
    text = canonical(params)
    assert text.isascii()
    pairs = [pair for pair in text.split("&") if pair]
    assert len(pairs) == len([k for k in params if k != "hmac"])
    assert all(pair.count("=") == 1 for pair in pairs)


@given(
    st.dictionaries(any_keys, any_values, max_size=4),
    st.dictionaries(any_keys, any_values, max_size=4),
)
def test_different_params_never_share_a_canonical_form(
    a: dict[str, str], b: dict[str, str]
) -> None:
    a.pop("hmac", None)
    b.pop("hmac", None)
    if a != b:
        assert canonical(a) != canonical(b)


@settings(max_examples=300)
@given(
    st.lists(
        st.tuples(
            st.text(alphabet="ab%&=+.[] \u00e9", max_size=5),
            st.text(alphabet="ab%&=+2F \u00e9", max_size=5),
        ),
        max_size=6,
    )
)
def test_any_pieces_of_query_parse_or_raise_signature_invalid(
    pieces: list[tuple[str, str]],
) -> None:
    raw = "&".join(f"{k}={v}" for k, v in pieces)
    try:
        params = parse_query(raw)
    except SignatureInvalid:
        return
    assert "" not in params
    canonical(params)
