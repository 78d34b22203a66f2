"""The webhook intake's body parser, by property: any bytes give changes or MalformedWebhook."""

from __future__ import annotations

import json
import math
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.catalog import CATALOG
from connector.intake import MalformedWebhook, change_actions, parse_batch

json_scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)
fields = st.sampled_from(["event", "email", "book_id", "variables", "from_all"])
elements = st.dictionaries(fields | st.text(max_size=6), json_values, max_size=5)
# What Postgres can store: no NUL, no lone surrogates.
storable_text = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12
)
storable_scalars = st.none() | st.booleans() | st.integers() | st.floats() | storable_text
# The actions the shipped triggers take as changes of a list: new_emails, delete, unsubscribe.
DIRECT = change_actions(CATALOG.triggers)
actions = st.sampled_from([*sorted(DIRECT), "open", "redirect", "task_status_update"])


def parsed_or_refused(body: bytes) -> tuple[list[Any], list[str]] | None:
    try:
        return parse_batch(body, DIRECT)
    except MalformedWebhook:
        return None


@given(st.binary(max_size=400))
def test_any_bytes_parse_or_are_refused(body: bytes) -> None:
    parsed_or_refused(body)


@given(st.lists(elements, max_size=5) | json_values)
def test_any_json_document_parses_or_is_refused(document: Any) -> None:
    # allow_nan: the literals NaN and Infinity reach the parser too.
    parsed_or_refused(json.dumps(document, allow_nan=True).encode())


@given(st.integers(min_value=1, max_value=5000))
def test_any_depth_parses_or_is_refused(depth: int) -> None:
    assert parsed_or_refused(b"[" * depth + b"]" * depth) is not None or depth > 1
    assert parsed_or_refused(b'{"a":' * depth + b"1" + b"}" * depth) is None


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "event": actions,
                "email": st.emails(),
                "book_id": st.integers(min_value=1, max_value=2**31) | st.integers().map(str),
                "variables": st.dictionaries(storable_text, storable_scalars, max_size=3),
                "from_all": st.sampled_from([0, 1, "1", "true", "false", True]),
            }
        ),
        max_size=6,
    )
)
def test_well_formed_batches_parse_to_their_changes(batch: list[dict[str, Any]]) -> None:
    body = json.dumps(batch).encode()
    result = parsed_or_refused(body)
    if any(not str(e["book_id"]).lstrip("-").isdigit() for e in batch if e["event"] in DIRECT):
        return
    if any(not _finite(e["variables"]) for e in batch):
        assert result is None
        return
    assert result is not None
    changes, others = result
    wanted = [e for e in batch if e["event"] in DIRECT]
    assert [c.action for c in changes] == [e["event"] for e in wanted]
    assert [c.email for c in changes] == [e["email"].strip().lower() for e in wanted]
    assert [c.book_id for c in changes] == [int(e["book_id"]) for e in wanted]
    assert others == [e["event"] for e in batch if e["event"] not in DIRECT]


def _finite(variables: dict[str, Any]) -> bool:
    return all(not isinstance(v, float) or math.isfinite(v) for v in variables.values())


@given(st.lists(elements, max_size=3))
def test_what_parses_can_be_stored(batch: list[dict[str, Any]]) -> None:
    result = parsed_or_refused(json.dumps(batch, allow_nan=True).encode())
    if result is None:
        return
    for change in result[0]:
        # Postgres takes text as UTF-8 without NUL, and jsonb without NaN or Infinity.
        text = json.dumps([change.email, change.variables], ensure_ascii=False, allow_nan=False)
        text.encode("utf-8")
        assert "\x00" not in text and "\\u0000" not in text
