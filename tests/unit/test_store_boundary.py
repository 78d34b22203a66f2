"""Only the store runs named queries: every ``q()`` call in ``connector/`` is in
``connector/store/``, and the store itself builds on nothing but the named queries. Read from
the source, so a call inside a function or behind an alias is seen too."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CONNECTOR = ROOT / "connector"


def _calls_q(tree: ast.AST) -> bool:
    """Whether the module imports ``q`` from the queries module (under any name) and calls it,
    or calls ``queries.q(...)``."""
    names = {
        alias.asname or alias.name
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("queries")
        for alias in node.names
        if alias.name == "q"
    }
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Name) and func.id in names:
            return True
        if isinstance(func, ast.Attribute) and func.attr == "q":
            return True
    return False


def callers_of_q() -> set[str]:
    found = set()
    for path in CONNECTOR.rglob("*.py"):
        if _calls_q(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            found.add(path.relative_to(ROOT).as_posix())
    return found


def test_only_the_store_calls_q() -> None:
    callers = callers_of_q()
    assert any(c.startswith("connector/store/") for c in callers)  # the scan sees calls
    outside = {c for c in callers if not c.startswith("connector/store/")}
    assert sorted(outside) == []


def test_the_store_imports_only_the_named_queries() -> None:
    for path in (CONNECTOR / "store").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                if module.startswith("connector"):
                    assert module in {"connector.db.queries", "connector.store"}, (path, module)
