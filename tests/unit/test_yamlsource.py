"""The YAML layer: libyaml and pure-Python loading agree to the column; aliases and ``${`` in
flow style are refused with a position and a reason."""

from __future__ import annotations

import gc
import threading
import types

import pytest
import yaml

from connector.yamlsource import (
    FAST_LOADER,
    FLOW_MAPPING_HINT,
    PURE_LOADER,
    fast_loader,
    gc_paused,
    load,
)

HAS_LIBYAML = hasattr(yaml, "CSafeLoader")
BOTH = [
    pytest.param(PURE_LOADER, id="pure"),
    pytest.param(
        getattr(yaml, "CSafeLoader", None),
        id="libyaml",
        marks=pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML built without libyaml"),
    ),
]
ENV = {"LIST_ID": "5", "HOOK": "https://example.com/h"}

# Well-formed documents: every kind of node, spacing and line break the loaders might count
# differently.
GOOD = {
    "block": "connections:\n  main:\n    client_id: a\nflows:\n  - name: x\n    every: 5m\n",
    "flow style": "a: {b: [1, 2, {c: d}], e: 'f'}\nlist: [x, y]\n",
    "quoted variable in flow style": 'params: {mailing_list_id: "${LIST_ID}"}\n',
    "block scalars": "a: |\n  one\n  two\nb: >-\n  folded\n  text\nc: after\n",
    "multi-line quoted": "a: \"one\n  two\"\nb: 'x\n\n  y'\nc: 1\n",
    "comments and blank lines": "# top\n\na: 1 # trailing\n\n# mid\nb:\n  # inner\n  - 2\n",
    "crlf": "a: 1\r\nb:\r\n  - c\r\n  - d: e\r\n",
    "unicode": "é: ü\nflows:\n  - {name: x, every: 'ö'}\n  - 😀: \"\u2028x\"\nz: 1\n",
    "bom": "\ufeffa: 1\nb: [2]\n",
    "document markers": "---\na: 1\nb: 2\n...\n",
    "tags and merge": "a: !!str 5\nb:\n  <<: {c: 1}\n  d: 2\n",
    "explicit keys": "? a\n: 1\n? [x, y]\n: 2\n",
    "anchor without alias": "a: &first 1\nb: 2\n",
    "stars that are not aliases": 'path: "/var/*.jsonl"\nglob: a*b\nq: "*x"\nlist: [a*]\n',
    "indented sequence": "flows:\n- name: a\n  actions:\n  - type: log\n",
    "variables": "url: ${HOOK}\nlist: ${LIST_ID}\nescaped: $${LIST_ID}\n",
    "empty": "",
    "only a comment": "# nothing\n",
}

# Broken documents: each loader must report the same problem at the same place.
BAD = {
    "unclosed flow sequence": "a: [1\n",
    "unclosed flow mapping": "a: {b: 1\nc: 2\n",
    "tab indentation": "a:\n\tb: 1\n",
    "bad indentation": "a:\n  b: 1\n c: 2\n",
    "two documents": "a: 1\n---\nb: 2\n",
    "unclosed quote": 'a: "open\nb: 1\n',
    "control character": "a: \x07\n",
    "mapping in a plain value": "a: b: c\n",
    "unknown tag": "a: !!python/object:os.system x\n",
    "duplicate keys": "a: 1\nb: 2\na: 3\n",
    "bad directive": "%YAML 2.0\n---\na: 1\n",
    "unknown escape": 'a: "\\q"\n',
    "variable in flow mapping": "a:\n  params: {mailing_list_id: ${LIST_ID}}\n",
    "variable in flow sequence": "a: [${LIST_ID}, 2]\n",
    "alias": "a: &x 1\nb: *x\n",
    "unset variable": "a: ${NOT_SET_ANYWHERE}\n",
}


Outcome = tuple[object, list[tuple[object, ...]], dict[object, object]]


def outcome(text: str, loader: type) -> Outcome:
    located = load(text, "f.yaml", ENV, loader=loader)
    problems = [(p.line, p.column, p.path, p.message) for p in located.problems]
    return located.data, problems, located.positions


@pytest.mark.skipif(not HAS_LIBYAML, reason="PyYAML built without libyaml")
@pytest.mark.parametrize("text", [*GOOD.values(), *BAD.values()], ids=[*GOOD, *BAD])
def test_libyaml_and_pure_python_give_the_same_data_problems_and_positions(text: str) -> None:
    assert outcome(text, yaml.CSafeLoader) == outcome(text, PURE_LOADER)


@pytest.mark.parametrize("text", GOOD.values(), ids=GOOD.keys())
@pytest.mark.parametrize("loader", BOTH)
def test_good_documents_load_without_problems(text: str, loader: type) -> None:
    data, problems, _ = outcome(text, loader)
    assert problems == []
    assert isinstance(data, dict)


@pytest.mark.parametrize("text", BAD.values(), ids=BAD.keys())
@pytest.mark.parametrize("loader", BOTH)
def test_bad_documents_are_located_problems(text: str, loader: type) -> None:
    _, problems, _ = outcome(text, loader)
    assert problems
    if text != BAD["control character"]:  # PyYAML's reader names no line for this one
        assert all(line is not None and column is not None for line, column, _, _ in problems)


@pytest.mark.parametrize("loader", BOTH)
def test_positions_point_at_keys_and_items(loader: type) -> None:
    text = "flows:\n  - name: x\n    trigger: {type: t, params: {id: 1}}\n"
    positions = outcome(text, loader)[2]
    assert positions[("flows",)] == (1, 1)
    assert positions[("flows", 0)] == (2, 5)
    assert positions[("flows", 0, "trigger", "params", "id")] == (3, 33)


def test_libyaml_is_used_where_it_is_installed_and_pure_python_where_not() -> None:
    with_c = types.SimpleNamespace(CSafeLoader="C", SafeLoader="pure")
    without_c = types.SimpleNamespace(SafeLoader="pure")
    assert fast_loader(with_c) == "C"
    assert fast_loader(without_c) == "pure"
    assert FAST_LOADER is (yaml.CSafeLoader if HAS_LIBYAML else yaml.SafeLoader)


# -- ${...} inside flow style ------------------------------------------------------------------


@pytest.mark.parametrize("loader", BOTH)
@pytest.mark.parametrize(
    ("text", "line", "column", "reason"),
    [
        # The issue's own line: the mark stays on the '{' after the '$'.
        (
            "flows:\n  - trigger:\n      params: {mailing_list_id: ${LIST_ID}}\n",
            3,
            34,
            "expected ',' or '}', but got '{'",
        ),
        ("a: [${LIST_ID}]\n", 1, 6, "expected ',' or ']', but got '{'"),
        ("a: {url: https://x.example/${HOOK}}\n", 1, 29, "expected ',' or '}', but got '{'"),
        ("a: {b: $${LIST_ID}}\n", 1, 10, "expected ',' or '}', but got '{'"),
    ],
)
def test_a_variable_in_flow_style_gets_the_hint_at_its_position(
    loader: type, text: str, line: int, column: int, reason: str
) -> None:
    _, problems, _ = outcome(text, loader)
    assert problems == [(line, column, "", f"YAML syntax: {reason}; {FLOW_MAPPING_HINT}")]


@pytest.mark.parametrize("loader", BOTH)
@pytest.mark.parametrize(
    "text",
    ["a: [1\n", "a: {b: [1}\n", "a: {b: c {d}}\n", "a: $\nb: {c: 1\n"],
    ids=["unclosed", "mismatched brackets", "brace after plain text", "dollar elsewhere"],
)
def test_other_syntax_errors_get_no_hint(loader: type, text: str) -> None:
    _, problems, _ = outcome(text, loader)
    assert len(problems) == 1
    assert problems[0][3].startswith("YAML syntax: ")
    assert FLOW_MAPPING_HINT not in problems[0][3]


@pytest.mark.parametrize("loader", BOTH)
def test_a_quoted_or_block_style_variable_in_the_same_place_loads(loader: type) -> None:
    quoted = outcome('params: {mailing_list_id: "${LIST_ID}"}\n', loader)
    block = outcome("params:\n  mailing_list_id: ${LIST_ID}\n", loader)
    assert quoted[:2] == ({"params": {"mailing_list_id": "5"}}, [])
    assert block[:2] == ({"params": {"mailing_list_id": "5"}}, [])


# -- aliases -----------------------------------------------------------------------------------

LAUGHS = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 9)}]\n" for i in range(8)
)


@pytest.mark.parametrize("loader", BOTH)
@pytest.mark.parametrize(
    ("text", "line", "column", "name"),
    [
        ("a: &a [*a]\n", 1, 8, "a"),
        ("base: &base {x: 1}\nflows:\n  - <<: *base\n    y: 2\n", 3, 9, "base"),
        ("? &k key\n: 1\n*k : 2\n", 3, 1, "k"),
        ("a: &s text\nb:\n  - c\n  - *s\n", 4, 5, "s"),
        (LAUGHS, 2, 8, "a"),
    ],
    ids=["recursive", "merge key", "mapping key", "scalar", "billion laughs"],
)
def test_aliases_are_refused_at_their_position(
    loader: type, text: str, line: int, column: int, name: str
) -> None:
    data, problems, _ = outcome(text, loader)
    assert data is None
    assert problems == [
        (
            line,
            column,
            "",
            f"YAML alias *{name} is not allowed in a flow file; write the value out in full",
        )
    ]


@pytest.mark.parametrize("loader", BOTH)
def test_a_syntax_error_before_an_alias_is_still_reported_as_syntax(loader: type) -> None:
    _, problems, _ = outcome("a: 'open\nb: *x\n", loader)
    assert len(problems) == 1
    assert problems[0][3].startswith("YAML syntax: ")


# -- garbage collection paused while loading ---------------------------------------------------


def test_gc_is_paused_while_loading_and_restored_after() -> None:
    assert gc.isenabled()
    with gc_paused():
        assert not gc.isenabled()
        with gc_paused():
            assert not gc.isenabled()
        assert not gc.isenabled()
    assert gc.isenabled()
    load("a: [1\n", "f.yaml", {})  # a failed load restores it too
    assert gc.isenabled()
    with pytest.raises(RuntimeError), gc_paused():
        raise RuntimeError("boom")
    assert gc.isenabled()


def test_gc_stays_off_if_it_was_off() -> None:
    gc.disable()
    try:
        with gc_paused():
            pass
        assert not gc.isenabled()
    finally:
        gc.enable()


def test_overlapping_pauses_in_two_threads_end_with_the_last() -> None:
    inside, leave = threading.Event(), threading.Event()

    def other() -> None:
        with gc_paused():
            inside.set()
            leave.wait(timeout=30)

    thread = threading.Thread(target=other)
    thread.start()
    try:
        assert inside.wait(timeout=30)
        with gc_paused():
            pass
        assert not gc.isenabled()  # the other thread is still loading
    finally:
        leave.set()
        thread.join(timeout=30)
    assert gc.isenabled()
