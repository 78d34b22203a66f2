"""Standard Webhooks signatures: ``webhook-id``, ``webhook-timestamp``, ``webhook-signature``.

The signed content is ``{id}.{timestamp}.{body}`` (body as raw bytes), signed with
HMAC-SHA256 under the base64-decoded part of a ``whsec_`` secret, and sent as
``v1,<base64>``. During a rotation several secrets sign, giving a space-separated list;
a receiver accepts the message if any one signature matches a secret it knows.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets as random_secrets
from collections.abc import Mapping, Sequence
from datetime import datetime

from connector.errors import SignatureInvalid

PREFIX = "whsec_"
TOLERANCE_SECONDS = 300
SECRET_BYTES = 32
# Svix and the spec's reference libraries make 24 to 64 bytes; fewer is guessable.
MIN_SECRET_BYTES = 24


def generate_secret() -> str:
    """A fresh ``whsec_`` secret: 32 random bytes, base64."""
    return PREFIX + base64.b64encode(random_secrets.token_bytes(SECRET_BYTES)).decode()


def secret_key(secret: str) -> bytes:
    """The HMAC key inside a ``whsec_`` secret."""
    if not secret.startswith(PREFIX):
        raise SignatureInvalid("a webhook secret starts with 'whsec_' followed by base64")
    try:
        key = base64.b64decode(secret[len(PREFIX) :], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureInvalid("the webhook secret after 'whsec_' is not base64") from None
    if not key:
        raise SignatureInvalid("the webhook secret is empty")
    return key


def signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256>`` of ``id.timestamp.body``."""
    signed = f"{msg_id}.{timestamp}.".encode() + body
    digest = hmac.new(secret_key(secret), signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def sign_headers(
    secrets: Sequence[str], msg_id: str, timestamp: int, body: bytes
) -> dict[str, str]:
    """The three Standard Webhooks headers, one signature per secret (rotation)."""
    if not secrets:
        raise ValueError("at least one secret is needed to sign")
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(signature(s, msg_id, timestamp, body) for s in secrets),
    }


def verify(
    secrets: Sequence[str],
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: datetime,
    tolerance: int = TOLERANCE_SECONDS,
) -> str:
    """Check a received webhook; return its ``webhook-id`` or raise :class:`SignatureInvalid`.

    The timestamp must lie within ``tolerance`` seconds either side of ``now``; pair this
    with a store of seen ids, since a replay inside the window still verifies.
    """
    lower = {k.lower(): v for k, v in headers.items()}
    msg_id = lower.get("webhook-id")
    raw_ts = lower.get("webhook-timestamp")
    raw_sigs = lower.get("webhook-signature")
    if not msg_id or not raw_ts or not raw_sigs:
        raise SignatureInvalid(
            "missing header: webhook-id, webhook-timestamp and webhook-signature are required"
        )
    if not raw_ts.isascii() or not raw_ts.isdigit():
        raise SignatureInvalid("webhook-timestamp is not a number of seconds")
    timestamp = int(raw_ts)
    drift = now.timestamp() - timestamp
    if drift > tolerance:
        raise SignatureInvalid("webhook-timestamp is too old")
    if drift < -tolerance:
        raise SignatureInvalid("webhook-timestamp is in the future")
    if not secrets:
        raise SignatureInvalid("no secret to verify with")
    expected = [signature(s, msg_id, timestamp, body) for s in secrets]
    for candidate in raw_sigs.split(" "):
        version, _, value = candidate.partition(",")
        if version != "v1" or not value:
            continue
        for wanted in expected:
            if hmac.compare_digest(candidate.encode(), wanted.encode()):
                return msg_id
    raise SignatureInvalid("no signature matches")
