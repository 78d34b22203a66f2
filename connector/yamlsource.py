"""YAML with positions: every value's line and column, and ``${VAR}`` interpolation.

The flow loader needs to say *where* a problem is. PyYAML's node tree carries marks; we build
the Python value from it ourselves so every path (``flows[2].actions[0].url``) maps to a line.
libyaml composes the tree where it is installed; a document it refuses is parsed again by the
pure-Python loader, whose error messages are the ones users know. Aliases (``*name``) are
refused: a flow file does not need them, and expanded they turn a few hundred bytes into
gigabytes.
"""

from __future__ import annotations

import gc
import os
import re
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import yaml

from connector.errors import ConfigProblem

Path = tuple[str | int, ...]
# yaml.SafeLoader or yaml.CSafeLoader: the same interface, no common base class in the stubs.
LoaderClass = type[Any]

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


PURE_LOADER: LoaderClass = yaml.SafeLoader


def fast_loader(module: Any = yaml) -> LoaderClass:
    """libyaml's loader where PyYAML was built with it, else the pure-Python one.

    libyaml (a C extension) composes a large file about ten times faster than PyYAML's own
    scanner; both give the same marks.
    """
    found: LoaderClass = getattr(module, "CSafeLoader", None) or module.SafeLoader
    return found


FAST_LOADER: LoaderClass = fast_loader()

_gc_lock = threading.Lock()
_gc_pauses = 0
_gc_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection inside (nested, and from several threads, safely).

    A large flow file becomes a few hundred thousand nodes, values and models, none of them
    garbage; each allocation-triggered collection walks all of them again, which made up two
    thirds of loading a 5,000-flow file. Whatever cycles are made meanwhile are collected
    after.
    """
    global _gc_pauses, _gc_was_enabled
    with _gc_lock:
        if _gc_pauses == 0:
            _gc_was_enabled = gc.isenabled()
            gc.disable()
        _gc_pauses += 1
    try:
        yield
    finally:
        with _gc_lock:
            _gc_pauses -= 1
            if _gc_pauses == 0 and _gc_was_enabled:
                gc.enable()


FLOW_MAPPING_HINT = "${...} inside {...} or [...] must be quoted, or written in block style"


class _Refused(Exception):
    """The document is well-formed YAML that a flow file may not use."""

    def __init__(self, mark: yaml.Mark, message: str) -> None:
        super().__init__(message)
        self.mark = mark
        self.message = message


def load(
    text: str,
    file: str,
    env: Mapping[str, str] | None = None,
    *,
    loader: LoaderClass | None = None,
) -> Located:
    """Parse ``text``; syntax errors, aliases, duplicate keys and missing variables are problems.

    ``loader`` is the loader class to try first (libyaml's where it is installed). A document
    it refuses is parsed again by PyYAML's pure-Python loader, so every syntax error reads and
    points exactly the same with or without libyaml.
    """
    env = os.environ if env is None else env
    with gc_paused():
        return _load(text, file, env, FAST_LOADER if loader is None else loader)


def _load(text: str, file: str, env: Mapping[str, str], first: LoaderClass) -> Located:
    located = Located(file=file, data=None)
    try:
        try:
            node, composer = _compose(text, first)
        except yaml.YAMLError:
            if first is PURE_LOADER:
                raise
            node, composer = _compose(text, PURE_LOADER)
        try:
            if node is None:
                located.data = {}
                return located
            located.data = _build(node, (), composer, located, env)
        finally:
            composer.dispose()
    except _Refused as exc:
        located.problems.append(
            ConfigProblem(file, exc.mark.line + 1, exc.mark.column + 1, "", exc.message)
        )
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else None
        column = mark.column + 1 if mark else None
        reason = exc.problem or exc.context or "invalid YAML"
        if mark is not None and _at_variable(text, mark.index):
            reason = f"{reason}; {FLOW_MAPPING_HINT}"
        located.problems.append(ConfigProblem(file, line, column, "", f"YAML syntax: {reason}"))
    except yaml.YAMLError as exc:
        located.problems.append(ConfigProblem(file, None, None, "", f"YAML syntax: {exc}"))
    return located


def _compose(text: str, loader_cls: LoaderClass) -> tuple[yaml.Node | None, Any]:
    """The document's node tree and the loader that holds it (the caller disposes of it)."""
    if "*" in text:
        _refuse_aliases(text, loader_cls)
    loader = loader_cls(text)
    try:
        return loader.get_single_node(), loader
    except BaseException:
        loader.dispose()
        raise


def _refuse_aliases(text: str, loader_cls: LoaderClass) -> None:
    """Refuse the first alias (``*name``): expanded, a few hundred bytes can become gigabytes.

    Flow files have no use for them. Only the scanner runs here; a syntax error is left to the
    parse that follows, which reports it.
    """
    scanner = loader_cls(text)
    try:
        while not scanner.check_token(yaml.StreamEndToken):
            token = scanner.get_token()
            if isinstance(token, yaml.AliasToken):
                raise _Refused(
                    token.start_mark,
                    f"YAML alias *{token.value} is not allowed in a flow file; "
                    "write the value out in full",
                )
    except yaml.YAMLError:
        return
    finally:
        scanner.dispose()


def _at_variable(text: str, index: int) -> bool:
    """Whether ``index`` is at a ``${`` (or at its ``{``): YAML reads that as a flow mapping."""
    if text.startswith("${", index):
        return True
    return index > 0 and text.startswith("${", index - 1)


_STR = "tag:yaml.org,2002:str"
# Keys that SafeConstructor.flatten_mapping rewrites: ``<<`` merges and ``=`` values.
_FLATTENED = frozenset({"tag:yaml.org,2002:merge", "tag:yaml.org,2002:value"})


def _build(
    node: yaml.Node, path: Path, loader: Any, located: Located, env: Mapping[str, str]
) -> Any:
    mark = node.start_mark
    located.positions[path] = (mark.line + 1, mark.column + 1)
    if isinstance(node, yaml.MappingNode):
        if any(key_node.tag in _FLATTENED for key_node, _ in node.value):
            loader.flatten_mapping(node)
        result: dict[str, Any] = {}
        for key_node, value_node in node.value:
            key = _scalar(key_node, loader)
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
    value = _scalar(node, loader)
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


def _scalar(node: yaml.Node, loader: Any) -> Any:
    # Most values are plain strings: skip the constructor's bookkeeping for them.
    if type(node) is yaml.ScalarNode and node.tag == _STR:
        return node.value
    return loader.construct_object(node, deep=True)
