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
