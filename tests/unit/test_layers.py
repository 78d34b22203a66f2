"""The import direction between the HTTP layers: ``http_client`` at the bottom, ``auth`` on
it, ``providers`` on both. Read from the source (every import, also inside functions), so a
cycle cannot hide behind a lazy import."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports_of(package: str) -> dict[str, set[str]]:
    """Each module of ``package`` -> the ``connector.*`` modules it imports."""
    found: dict[str, set[str]] = {}
    for path in (ROOT / package.replace(".", "/")).rglob("*.py"):
        module = ".".join(path.relative_to(ROOT).with_suffix("").parts)
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module)
                names.update(f"{node.module}.{alias.name}" for alias in node.names)
        found[module] = {name for name in names if name.startswith("connector.")}
    return found


def reaching(found: dict[str, set[str]], prefix: str) -> dict[str, set[str]]:
    hits = {m: {n for n in names if n.startswith(prefix)} for m, names in found.items()}
    return {m: names for m, names in hits.items() if names}


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("connector.http_client", "connector.auth"),
        ("connector.http_client", "connector.providers"),
        ("connector.auth", "connector.providers"),
    ],
)
def test_a_lower_layer_never_imports_a_higher_one(package: str, forbidden: str) -> None:
    found = imports_of(package)
    assert len(found) >= 4  # the package was read, not an empty folder
    assert reaching(found, forbidden + ".") == {}


def test_the_check_sees_the_imports_that_do_exist() -> None:
    providers = imports_of("connector.providers")
    assert reaching(providers, "connector.auth.")
    assert reaching(providers, "connector.http_client.")
    assert reaching(imports_of("connector.auth"), "connector.http_client.")


def plugin_imports_inside_functions(source: str) -> list[str]:
    """The ``triggers``/``actions`` modules that ``source`` imports inside a function."""
    found: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for inner in ast.walk(node):
            names: list[str] = []
            if isinstance(inner, ast.Import):
                names = [alias.name for alias in inner.names]
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                names = [inner.module]
            found += [n for n in names if n.split(".")[0] in ("triggers", "actions")]
    return found


def test_the_catalogue_is_handed_in_never_looked_up_inside_a_function() -> None:
    # The triggers and actions reach the worker as a catalogue (connector.catalog) and the
    # plans made with it; a function-level import would be a service locator in disguise.
    modules = list((ROOT / "connector").rglob("*.py"))
    assert len(modules) > 50
    found = {
        path.relative_to(ROOT).as_posix(): plugin_imports_inside_functions(path.read_text())
        for path in modules
    }
    assert {path: names for path, names in found.items() if names} == {}


def test_the_plugin_import_check_reads_function_bodies() -> None:
    source = (
        "from actions import ACTIONS\n"
        "def f():\n    from triggers import TRIGGERS\n"
        "async def g():\n    import actions.webhook\n"
    )
    assert plugin_imports_inside_functions(source) == ["triggers", "actions.webhook"]
