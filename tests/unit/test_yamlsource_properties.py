"""The flow-file loader by property: ``${VAR}`` expansion, positions, and nothing but problems."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from connector.catalog import CATALOG
from connector.config import parse
from connector.errors import ConfigInvalid
from connector.yamlsource import load

names = st.from_regex(r"[a-z_][a-z0-9_]{0,8}", fullmatch=True)
# Never set: upper case, so no drawn environment can hold them.
unset_names = st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True)
# Text a double-quoted YAML scalar can carry through JSON-style escapes.
plain = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs", "Cc")),
    max_size=8,
).filter(lambda t: "$" not in t)
values = st.text(
    alphabet=st.characters(max_codepoint=0xFFFF, blacklist_categories=("Cs", "Cc")),
    min_size=1,
    max_size=8,
)


@st.composite
def templated(draw: Any) -> tuple[str, dict[str, str], str, list[str]]:
    """A scalar with ``${VAR}`` references, its environment, what it expands to, and the
    variables that are missing."""
    env = draw(st.dictionaries(names, values, max_size=4))
    source, expected, missing = "", "", []
    for _ in range(draw(st.integers(min_value=0, max_value=5))):
        kind = draw(st.sampled_from(["text", "set", "default", "unset", "escape"]))
        if kind == "text":
            chunk = draw(plain)
            source, expected = source + chunk, expected + chunk
        elif kind == "escape":
            source, expected = source + "$${", expected + "${"
        else:
            # The environment is drawn first and never changes: references only read it.
            known = st.sampled_from(sorted(env)) if env else unset_names
            if kind == "set" and env:
                name = draw(known)
                source, expected = source + f"${{{name}}}", expected + env[name]
            elif kind == "default":
                name = draw(known | unset_names)
                fallback = draw(plain.filter(lambda t: "}" not in t))
                source += f"${{{name}:-{fallback}}}"
                expected += env.get(name) or fallback
            else:
                name = draw(unset_names)
                source, expected = source + f"${{{name}}}", expected + f"${{{name}}}"
                missing.append(name)
    return source, env, expected, missing


@given(templated())
def test_variables_expand_once_and_missing_ones_are_named(
    case: tuple[str, dict[str, str], str, list[str]],
) -> None:
    source, env, expected, missing = case
    located = load(f"top:\n  value: {json.dumps(source)}\n", "f.yaml", env)
    assert located.data == {"top": {"value": expected}}
    named = [p.message.split()[2] for p in located.problems]
    assert named == missing
    for problem in located.problems:
        # At the value, where the reference was written.
        assert (problem.path, problem.line, problem.column) == ("top.value", 2, 10)


keys = st.from_regex(r"[a-z][a-z0-9_]{0,10}", fullmatch=True)


@given(st.lists(st.tuples(keys, st.lists(st.integers(), max_size=3)), min_size=1, max_size=8))
def test_every_key_and_item_is_located_where_it_was_written(
    entries: list[tuple[str, list[int]]],
) -> None:
    lines, wanted = [], {}
    seen: set[str] = set()
    for key, items in entries:
        if key in seen:
            continue
        seen.add(key)
        lines.append(f"{key}:")
        wanted[(key,)] = (len(lines), 1)
        for index, item in enumerate(items):
            lines.append(f"  - {item}")
            wanted[(key, index)] = (len(lines), 5)
    located = load("\n".join(lines) + "\n", "f.yaml", {})
    assert located.problems == []
    for path, position in wanted.items():
        assert located.positions[path] == position, path
        assert located.where((*path, "deeper", 3)) == position


@given(st.text(max_size=300))
def test_any_text_loads_or_lists_its_problems(text: str) -> None:
    located = load(text, "f.yaml", {})
    for problem in located.problems:
        assert problem.file == "f.yaml" and problem.message


yamlish = st.lists(
    st.sampled_from(
        [
            "connections:",
            "flows:",
            "  main:",
            "    client_id: ${ID}",
            "    client_secret: x",
            "  - name: f",
            "    trigger: {type: sendpulse.subscriber_added}",
            "    actions:",
            "      - type: webhook",
            "        url: https://example.com/{{ event.email }}",
            "        secret: whsec_",
            "egress: {allow_networks: [10.0.0.0/8]}",
            "apps:",
            "  - ",
            "- [",
            "{",
            "&a x",
            "*a",
            "!!python/object:os.system",
            "'",
            "\t",
            ": :",
        ]
    ),
    max_size=14,
)


@given(yamlish)
def test_any_flow_like_text_gives_a_config_or_config_invalid(lines: list[str]) -> None:
    try:
        parse("\n".join(lines) + "\n", CATALOG, "flows.yaml", env={"ID": "abc"})
    except ConfigInvalid as exc:
        assert exc.problems
