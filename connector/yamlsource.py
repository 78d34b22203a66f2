"""YAML with positions: every value's line and column, and ``${VAR}`` interpolation.

The flow loader needs to say *where* a problem is. PyYAML's node tree carries marks; we build
the Python value from it ourselves so every path (``flows[2].actions[0].url``) maps to a line.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from connector.errors import ConfigProblem

Path = tuple[str | int, ...]

# ${VAR} or ${VAR:-default}; $${...} is a literal "${...}".
_VAR = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")


def format_path(path: Path) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass
class Located:
    """A parsed document plus where each path starts (1-based line and column)."""

    file: str
    data: Any
    positions: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[ConfigProblem] = field(default_factory=list)

    def where(self, path: Path) -> tuple[int | None, int | None]:
        """The position of ``path``, or of its nearest ancestor that was written."""
        for end in range(len(path), -1, -1):
            found = self.positions.get(tuple(path[:end]))
            if found:
                return found
        return (None, None)

    def problem(self, path: Path, message: str) -> ConfigProblem:
        line, column = self.where(path)
        return ConfigProblem(self.file, line, column, format_path(path), message)


def _interpolate(text: str, env: Mapping[str, str], missing: list[str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match.group(0) == "$${":
            return "${"
        name, default = match.group(1), match.group(2)
        if name in env and env[name] != "":
            return env[name]
        if default is not None:
            return default
        missing.append(name)
        return match.group(0)

    return _VAR.sub(replace, text)


def load(text: str, file: str, env: Mapping[str, str] | None = None) -> Located:
    """Parse ``text``; syntax errors, duplicate keys and missing variables become problems."""
    env = os.environ if env is None else env
    located = Located(file=file, data=None)
    try:
        # The reader checks the characters as the loader is made: a control character
        # fails here, before any node is read.
        loader = yaml.SafeLoader(text)
    except yaml.YAMLError as exc:
        located.problems.append(ConfigProblem(file, None, None, "", f"YAML syntax: {exc}"))
        return located
    try:
        node = loader.get_single_node()
        if node is None:
            located.data = {}
            return located
        located.data = _build(node, (), loader, located, env)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        located.problems.append(ConfigProblem(file, line, column, "", f"YAML syntax: {reason}"))
    except yaml.YAMLError as exc:
        located.problems.append(ConfigProblem(file, None, None, "", f"YAML syntax: {exc}"))
    finally:
        loader.dispose()
    return located


def _build(
    node: yaml.Node, path: Path, loader: yaml.SafeLoader, located: Located, env: Mapping[str, str]
) -> Any:
    located.positions[path] = (node.start_mark.line + 1, node.start_mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in result:
                located.positions[child] = (
                    key_node.start_mark.line + 1,
                    key_node.start_mark.column + 1,
                )
                located.problems.append(located.problem(child, f"duplicate key {key!r}"))
                continue
            result[key] = _build(value_node, child, loader, located, env)
            # Point at the key rather than the value: that is what a reader looks for.
            located.positions[child] = (
                key_node.start_mark.line + 1,
                key_node.start_mark.column + 1,
            )
        return result
    if isinstance(node, yaml.SequenceNode):
        return [_build(item, (*path, i), loader, located, env) for i, item in enumerate(node.value)]
    value = loader.construct_object(node, deep=True)
    if isinstance(value, str) and "$" in value:
        missing: list[str] = []
        value = _interpolate(value, env, missing)
        for name in missing:
            located.problems.append(
                located.problem(
                    path,
                    f"environment variable {name} is not set "
                    f"(set it, or write ${{{name}:-default}})",
                )
            )
    return value
