"""Standard Webhooks signing, checked against an independent implementation of the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.errors import SignatureInvalid
from connector.webhook_signing import generate_secret, sign_headers, verify

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
TS = int(NOW.timestamp())
# The example in the Standard Webhooks spec's reference libraries.
SPEC_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SPEC_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
SPEC_TS = 1614265330
SPEC_BODY = b'{"test": 2432232314}'
SPEC_SIG = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="


def reference_signature(secret: str, msg_id: str, ts: int, body: bytes) -> str:
    """The spec, written out again without our module: HMAC-SHA256 over id.ts.body."""
    key = base64.b64decode(secret.split("_", 1)[1])
    mac = hmac.new(key, msg_id.encode() + b"." + str(ts).encode() + b"." + body, hashlib.sha256)
    return "v1," + base64.b64encode(mac.digest()).decode()


def test_spec_vector_matches_reference_and_ours() -> None:
    assert reference_signature(SPEC_SECRET, SPEC_ID, SPEC_TS, SPEC_BODY) == SPEC_SIG
    headers = sign_headers([SPEC_SECRET], SPEC_ID, SPEC_TS, SPEC_BODY)
    assert headers == {
        "webhook-id": SPEC_ID,
        "webhook-timestamp": str(SPEC_TS),
        "webhook-signature": SPEC_SIG,
    }


def test_generated_secret_signs_like_the_reference() -> None:
    secret = generate_secret()
    assert secret.startswith("whsec_")
    assert len(base64.b64decode(secret[6:])) == 32
    body = b'{"email":"x@y.z"}'
    headers = sign_headers([secret], "d-1", TS, body)
    assert headers["webhook-signature"] == reference_signature(secret, "d-1", TS, body)
    assert verify([secret], headers, body, now=NOW) == "d-1"


def test_rotation_signs_with_every_secret_and_either_verifies() -> None:
    old, new = generate_secret(), generate_secret()
    body = b"{}"
    headers = sign_headers([new, old], "d-2", TS, body)
    parts = headers["webhook-signature"].split(" ")
    assert parts == [
        reference_signature(new, "d-2", TS, body),
        reference_signature(old, "d-2", TS, body),
    ]
    assert verify([old], headers, body, now=NOW) == "d-2"
    assert verify([new], headers, body, now=NOW) == "d-2"
    with pytest.raises(SignatureInvalid, match="no signature matches"):
        verify([generate_secret()], headers, body, now=NOW)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"webhook-id": "other"}, "no signature matches"),
        ({"webhook-timestamp": str(TS + 1)}, "no signature matches"),
        ({"webhook-timestamp": str(TS - 301)}, "too old"),
        ({"webhook-timestamp": str(TS + 301)}, "in the future"),
        ({"webhook-timestamp": "12a"}, "not a number"),
        ({"webhook-timestamp": "-5"}, "not a number"),
        ({"webhook-signature": "v2,abc"}, "no signature matches"),
        ({"webhook-signature": "v1a,abc v1,"}, "no signature matches"),
        ({"webhook-signature": ""}, "missing header"),
    ],
)
def test_tampered_headers_are_refused(change: dict[str, str], message: str) -> None:
    secret = generate_secret()
    body = b'{"a":1}'
    headers = {**sign_headers([secret], "d-3", TS, body), **change}
    with pytest.raises(SignatureInvalid, match=message):
        verify([secret], headers, body, now=NOW)


def test_flipped_body_byte_is_refused_and_window_edges_accepted() -> None:
    secret = generate_secret()
    body = b'{"email":"a@b.c"}'
    headers = sign_headers([secret], "d-4", TS, body)
    for i in range(len(body)):
        flipped = body[:i] + bytes([body[i] ^ 1]) + body[i + 1 :]
        with pytest.raises(SignatureInvalid):
            verify([secret], headers, flipped, now=NOW)
    for ts in (TS - 300, TS + 300):
        edge = sign_headers([secret], "d-4", ts, body)
        assert verify([secret], edge, body, now=NOW) == "d-4"


def test_header_names_are_case_insensitive_and_missing_ones_named() -> None:
    secret = generate_secret()
    headers = sign_headers([secret], "d-5", TS, b"x")
    upper = {k.upper(): v for k, v in headers.items()}
    assert verify([secret], upper, b"x", now=NOW) == "d-5"
    del upper["WEBHOOK-ID"]
    with pytest.raises(SignatureInvalid, match="missing header"):
        verify([secret], upper, b"x", now=NOW)


@pytest.mark.parametrize("bad", ["nope", "whsec_", "whsec_!!!notbase64"])
def test_malformed_secrets_are_refused(bad: str) -> None:
    with pytest.raises(SignatureInvalid):
        sign_headers([bad], "d", TS, b"")


secrets_st = st.binary(min_size=24, max_size=64).map(
    lambda key: "whsec_" + base64.b64encode(key).decode()
)
msg_ids = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters=" "),
    min_size=1,
    max_size=40,
)
skews = st.integers(min_value=-300, max_value=300)


@given(st.lists(secrets_st, min_size=1, max_size=3), msg_ids, skews, st.binary(max_size=300))
def test_what_we_sign_verifies_under_each_secret(
    secrets: list[str], msg_id: str, skew: int, body: bytes
) -> None:
    headers = sign_headers(secrets, msg_id, TS + skew, body)
    for secret in secrets:
        assert verify([secret], headers, body, now=NOW) == msg_id
        assert reference_signature(secret, msg_id, TS + skew, body) in headers[
            "webhook-signature"
        ].split(" ")


@given(secrets_st, secrets_st, msg_ids, st.binary(max_size=200), st.binary(min_size=1, max_size=8))
def test_a_changed_body_id_or_secret_never_verifies(
    secret: str, other: str, msg_id: str, body: bytes, extra: bytes
) -> None:
    headers = sign_headers([secret], msg_id, TS, body)
    with pytest.raises(SignatureInvalid):
        verify([secret], headers, body + extra, now=NOW)
    with pytest.raises(SignatureInvalid):
        verify([secret], {**headers, "webhook-id": msg_id + "x"}, body, now=NOW)
    if other != secret:
        with pytest.raises(SignatureInvalid):
            verify([other], headers, body, now=NOW)


header_text = st.text(max_size=80)


@given(
    st.dictionaries(
        st.sampled_from(["webhook-id", "webhook-timestamp", "webhook-signature", "Webhook-Id"]),
        header_text,
    ),
    st.binary(max_size=100),
)
def test_arbitrary_headers_raise_only_signature_invalid(
    headers: dict[str, str], body: bytes
) -> None:
    try:
        verify([SPEC_SECRET], headers, body, now=NOW)
    except SignatureInvalid:
        pass
