"""PHP's `serialize()` format, read: the form SendPulse's PHP and Node SDKs put lists in.

The PHP SDK (`smtpUnsubscribeEmails`, 1.x `removeEmails` and `smtpSendMail`) and the Node SDK
(`addEmails`, `removeEmails`, `smtpSendMail`, `smtpUnsubscribeEmails`, campaign attachments)
send lists and objects as one serialized string inside the body, as SendPulse's older API
documentation asked. Only what those SDKs write is read: arrays (`a:N:{...}`), strings
(`s:N:"..."`, N counted in UTF-8 bytes), integers, floats, booleans and null. An array whose
keys are 0..N-1 in order is a list; any other array is a dict with string keys.
"""

from __future__ import annotations

import re
from typing import Any

_ARRAY_START = re.compile(r"a:\d+:\{")
_NUMBER = re.compile(rb"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?|-?INF|NAN")


def is_serialized_array(text: str) -> bool:
    """Does `text` look like a serialized PHP array (the only form the SDKs send)?"""
    return _ARRAY_START.match(text.lstrip()) is not None


def unserialize(text: str) -> Any:
    """The value serialized in `text`; ValueError when it is not exactly one value."""
    data = text.strip().encode("utf-8")
    value, end = _value(data, 0)
    if end != len(data):
        raise ValueError(f"trailing data at byte {end}")
    return value


def _expect(data: bytes, at: int, literal: bytes) -> int:
    if data[at : at + len(literal)] != literal:
        raise ValueError(f"expected {literal!r} at byte {at}")
    return at + len(literal)


def _until(data: bytes, at: int, stop: bytes) -> tuple[bytes, int]:
    end = data.find(stop, at)
    if end < 0:
        raise ValueError(f"unterminated value at byte {at}")
    return data[at:end], end + len(stop)


def _value(data: bytes, at: int) -> tuple[Any, int]:
    kind = data[at : at + 2]
    if kind == b"N;":
        return None, at + 2
    if kind == b"b:":
        raw, end = _until(data, at + 2, b";")
        if raw not in (b"0", b"1"):
            raise ValueError(f"bad boolean at byte {at}")
        return raw == b"1", end
    if kind == b"i:":
        raw, end = _until(data, at + 2, b";")
        if re.fullmatch(rb"[-+]?\d+", raw) is None:
            raise ValueError(f"bad integer at byte {at}")
        return int(raw), end
    if kind == b"d:":
        raw, end = _until(data, at + 2, b";")
        if _NUMBER.fullmatch(raw) is None:
            raise ValueError(f"bad float at byte {at}")
        return float(raw), end
    if kind == b"s:":
        return _string(data, at + 2)
    if kind == b"a:":
        return _array(data, at + 2)
    raise ValueError(f"unsupported value at byte {at}")


def _length(data: bytes, at: int) -> tuple[int, int]:
    raw, end = _until(data, at, b":")
    if not raw.isdigit():
        raise ValueError(f"bad length at byte {at}")
    return int(raw), end


def _string(data: bytes, at: int) -> tuple[str, int]:
    size, at = _length(data, at)
    at = _expect(data, at, b'"')
    raw = data[at : at + size]
    if len(raw) != size:
        raise ValueError(f"string shorter than its length at byte {at}")
    end = _expect(data, at + size, b'";')
    return raw.decode("utf-8"), end


def _array(data: bytes, at: int) -> tuple[list[Any] | dict[str, Any], int]:
    count, at = _length(data, at)
    at = _expect(data, at, b"{")
    pairs: list[tuple[int | str, Any]] = []
    for _ in range(count):
        key, at = _value(data, at)
        if not isinstance(key, int | str) or isinstance(key, bool):
            raise ValueError(f"an array key must be an integer or a string (byte {at})")
        item, at = _value(data, at)
        pairs.append((key, item))
    at = _expect(data, at, b"}")
    if [key for key, _ in pairs] == list(range(len(pairs))):
        return [item for _, item in pairs], at
    return {str(key): item for key, item in pairs}, at
