"""The sandbox's readers of the SDKs' wire forms: PHP's serialize() and http_build_query keys."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from connector.sandbox.phpserial import is_serialized_array, unserialize
from connector.sandbox.wire import nest, unjson
from tests.integration.sandbox.sdk_wire import php_serialize


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('a:2:{i:0;s:15:"ann@example.com";i:1;s:3:"b@c";}', ["ann@example.com", "b@c"]),
        (
            'a:1:{i:0;a:2:{s:5:"email";s:3:"a@b";s:9:"variables";a:1:{s:3:"age";i:30;}}}',
            [{"email": "a@b", "variables": {"age": 30}}],
        ),
        # Keys that are not 0..N-1 in order make a dict, with string keys.
        ('a:2:{i:1;s:1:"x";i:0;s:1:"y";}', {"1": "x", "0": "y"}),
        ("a:1:{i:5;b:1;}", {"5": True}),
        ("a:0:{}", []),
        # A string's length counts UTF-8 bytes, and may hold quotes and semicolons.
        ('a:1:{i:0;s:8:"Київ";}', ["Київ"]),
        ('a:1:{i:0;s:7:"a";b:1;";}', ['a";b:1;']),
        ("a:3:{i:0;d:0.5;i:1;N;i:2;b:0;}", [0.5, None, False]),
        ("a:1:{i:0;i:-7;}", [-7]),
    ],
)
def test_unserialize_reads_what_the_sdks_write(text: str, value: Any) -> None:
    assert unserialize(text) == value


@pytest.mark.parametrize(
    "text",
    [
        "",
        "a:1:{",
        'a:1:{i:0;s:3:"ab";}',  # shorter than its length
        'a:1:{i:0;s:2:"abc";}',  # longer than its length
        'a:1:{i:0;s:1:"a";}}',  # trailing data
        "a:2:{i:0;i:1;}",  # fewer items than counted
        'O:8:"stdClass":0:{}',  # objects are not something the SDKs send
        "a:1:{i:0;b:2;}",
        "a:1:{i:0;i:1x;}",
        "a:1:{i:0;d:one;}",
        "a:1:{a:0:{}i:1;}",  # an array as a key
        "a:x:{}",
        'a:1:{i:0;s:1:"a"}',  # no ; after the string
    ],
)
def test_unserialize_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValueError):
        unserialize(text)


def test_only_arrays_count_as_serialized() -> None:
    assert is_serialized_array(" a:1:{i:0;i:1;}")
    assert not is_serialized_array('s:3:"abc";')
    assert not is_serialized_array("a:b")
    assert not is_serialized_array("ann@example.com")


scalars = st.none() | st.booleans() | st.integers() | st.text()
floats = st.floats(allow_nan=False, allow_infinity=False)
keys = st.text(alphabet="abcdefghij_", min_size=1, max_size=8)
values = st.recursive(
    scalars | floats,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, min_size=1),
    max_leaves=12,
)


@given(st.lists(values, max_size=5))
def test_unserialize_undoes_serialize(value: list[Any]) -> None:
    assert unserialize(php_serialize(value)) == value


def test_unjson_reads_json_and_serialized_arrays_and_leaves_the_rest() -> None:
    assert unjson('["a@b"]') == ["a@b"]
    assert unjson(' a:1:{i:0;s:3:"a@b";}') == ["a@b"]
    broken = 'a:1:{i:0;s:9:"a@b";}'
    assert unjson(broken) == broken
    assert unjson("a:b") == "a:b"
    assert unjson(["already"]) == ["already"]


@pytest.mark.parametrize(
    ("pairs", "tree"),
    [
        ([("limit", "10")], {"limit": "10"}),
        ([("status[0]", "3"), ("status[1]", "2")], {"status": ["3", "2"]}),
        ([("status[]", "3"), ("status[]", "2")], {"status": ["3", "2"]}),
        ([("status", "3"), ("status", "2")], {"status": ["3", "2"]}),
        (
            [
                ("email", "a@b"),
                ("variables[0][name]", "city"),
                ("variables[0][value]", "Lviv"),
                ("variables[1][name]", "visits"),
                ("variables[1][value]", "4"),
            ],
            {
                "email": "a@b",
                "variables": [
                    {"name": "city", "value": "Lviv"},
                    {"name": "visits", "value": "4"},
                ],
            },
        ),
        ([("f[a][b]", "1"), ("f[a][c]", "2")], {"f": {"a": {"b": "1", "c": "2"}}}),
        # Numbered out of order is a map, as PHP keeps it.
        ([("s[1]", "x"), ("s[0]", "y")], {"s": {"1": "x", "0": "y"}}),
        # Keys that are not PHP's bracket syntax stay as they are.
        ([("a[", "1"), ("[x]", "2"), ("b]", "3")], {"a[": "1", "[x]": "2", "b]": "3"}),
        # A later bracketed key replaces a plain value, as PHP does.
        ([("a", "1"), ("a[x]", "2")], {"a": {"x": "2"}}),
    ],
)
def test_nest_reads_keys_the_way_php_does(pairs: list[tuple[str, str]], tree: Any) -> None:
    assert nest(pairs) == tree
