"""Mailium/Sendloop app signatures: the ``hmac`` on install, launch and uninstall requests.

The algorithm is the vendor client's (``Hmac::verifyHmac``), restated so it can be checked
against independent test vectors:

1. parse the raw query like PHP's ``parse_str``: ``+`` and ``%XX`` decoded, ``.`` and spaces
   in keys turned into ``_``;
2. in keys and values replace ``%`` with ``%25`` then ``&`` with ``%26``; in keys also ``=``
   with ``%3D``;
3. drop ``hmac``; 4. sort by key, byte order;
5. rebuild like PHP's ``http_build_query`` (form encoding: space → ``+``, everything but
   letters, digits and ``-_.`` percent-encoded, so the escapes of step 2 are encoded again);
6. hex HMAC-SHA256 of that text with the app's client secret.

On top of the vendor's check (which has none) we fail closed on duplicate keys, array keys,
bad UTF-8 and a ``timestamp`` outside a freshness window (both directions), and compare in
constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from urllib.parse import quote_plus, unquote_plus

from connector.errors import SignatureInvalid

DEFAULT_WINDOW = timedelta(minutes=5)
_HEX64 = re.compile(r"[0-9a-fA-F]{64}")


def parse_query(raw: str) -> dict[str, str]:
    """Parse like PHP's ``parse_str``, but refuse what it would silently merge."""
    params: dict[str, str] = {}
    for piece in raw.lstrip("?").split("&"):
        if not piece:
            continue
        raw_key, _, raw_value = piece.partition("=")
        try:
            key = unquote_plus(raw_key, errors="strict")
            value = unquote_plus(raw_value, errors="strict")
        except UnicodeDecodeError:
            raise SignatureInvalid("the query is not valid UTF-8") from None
        key = key.lstrip(" ").replace(" ", "_").replace(".", "_")
        if not key:
            continue
        if "[" in key or "]" in key:
            raise SignatureInvalid(f"array parameters are not accepted in signed queries: {key}")
        if key in params:
            raise SignatureInvalid(f"parameter {key!r} appears twice")
        params[key] = value
    return params


def _form_encode(text: str) -> str:
    # quote_plus leaves "~" alone; PHP's urlencode does not.
    return quote_plus(text, safe="").replace("~", "%7E")


def canonical(params: Mapping[str, str]) -> str:
    """The text that is signed: steps 2 to 5 above."""
    escaped: dict[str, str] = {}
    for key, value in params.items():
        if key == "hmac":
            continue
        ekey = key.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
        escaped[ekey] = value.replace("%", "%25").replace("&", "%26")
    ordered = sorted(escaped.items(), key=lambda item: item[0].encode("utf-8"))
    return "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in ordered)


def signature(params: Mapping[str, str], secret: str) -> str:
    return hmac.new(
        secret.encode("utf-8"), canonical(params).encode("utf-8"), hashlib.sha256
    ).hexdigest()


def sign_query(params: Mapping[str, str], secret: str, *, now: datetime) -> str:
    """A query string carrying ``params``, a ``timestamp`` and their ``hmac``."""
    signed = {**params, "timestamp": str(int(now.timestamp()))}
    signed.pop("hmac", None)
    body = "&".join(f"{_form_encode(k)}={_form_encode(v)}" for k, v in signed.items())
    return f"{body}&hmac={signature(signed, secret)}"


def verify_query(
    raw: str,
    secret: str,
    *,
    now: datetime,
    window: timedelta = DEFAULT_WINDOW,
    secrets: tuple[str, ...] = (),
) -> dict[str, str]:
    """The verified params (without ``hmac``); :class:`SignatureInvalid` otherwise.

    ``secrets`` are extra secrets accepted during a rotation.
    """
    params = parse_query(raw)
    given = params.pop("hmac", None)
    if not given:
        raise SignatureInvalid("the request is not signed (no hmac)")
    if not _HEX64.fullmatch(given):
        raise SignatureInvalid("the hmac is not a hex SHA-256 digest")
    stamp = params.get("timestamp")
    if stamp is None or not stamp.isdigit():
        raise SignatureInvalid("the request has no valid timestamp")
    expected_ok = False
    for candidate in (secret, *secrets):
        # compare_digest on every candidate: no early exit that would time the secrets.
        if hmac.compare_digest(signature(params, candidate), given.lower()):
            expected_ok = True
    if not expected_ok:
        raise SignatureInvalid("the hmac does not match")
    age = now.timestamp() - int(stamp)
    if abs(age) > window.total_seconds():
        raise SignatureInvalid(
            f"the timestamp is {abs(int(age))}s in the {'past' if age > 0 else 'future'}; "
            f"at most {int(window.total_seconds())}s is accepted"
        )
    return params
