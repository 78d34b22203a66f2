"""The Mailium/Sendloop app store's request signing, as the vendor documents it.

Written from the documented steps, byte by byte, and sharing no code with
``connector.auth.mailium_signing`` (the connector's checker): the sandbox signs with this, and the
tests compare the connector against it, so a mistake in the connector cannot agree with
itself. The steps: drop ``hmac``; in keys escape ``%``, ``&`` and ``=``, in values ``%`` and
``&``; sort by key bytes; join as PHP's ``urlencode`` would (space as ``+``); hex
HMAC-SHA256 with the app secret.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from datetime import datetime


def php_urlencode(text: str) -> str:
    out = []
    for byte in text.encode("utf-8"):
        char = chr(byte)
        if char.isascii() and (char.isalnum() or char in "-_."):
            out.append(char)
        elif char == " ":
            out.append("+")
        else:
            out.append(f"%{byte:02X}")
    return "".join(out)


def reference_canonical(params: Mapping[str, str]) -> str:
    rows = []
    for key, value in params.items():
        if key == "hmac":
            continue
        k = key.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
        v = value.replace("%", "%25").replace("&", "%26")
        rows.append((k, v))
    rows.sort(key=lambda row: row[0].encode())
    return "&".join(php_urlencode(k) + "=" + php_urlencode(v) for k, v in rows)


def reference_hmac(params: Mapping[str, str], secret: str) -> str:
    text = reference_canonical(params)
    return hmac.new(secret.encode(), text.encode(), hashlib.sha256).hexdigest()


def wire(params: Mapping[str, str], *, space: str = "+") -> str:
    """Encode params for a URL the way a browser might (space as + or %20)."""
    parts = []
    for key, value in params.items():
        encoded = php_urlencode(value)
        if space == "%20":
            encoded = encoded.replace("+", "%20")
        parts.append(f"{php_urlencode(key)}={encoded}")
    return "&".join(parts)


def signed_query(params: Mapping[str, str], secret: str, *, now: datetime) -> str:
    """A query the app store would send: ``params``, a ``timestamp`` and their ``hmac``."""
    stamped = {k: v for k, v in params.items() if k != "hmac"}
    stamped["timestamp"] = str(int(now.timestamp()))
    return wire({**stamped, "hmac": reference_hmac(stamped, secret)})
