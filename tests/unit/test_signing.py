"""Standard Webhooks signing, checked against an independent implementation of the spec."""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

import pytest

from connector.signing import SignatureInvalid, generate_secret, sign_headers, verify

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
