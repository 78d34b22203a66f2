"""docs/architecture.md is the map of the code: its module index must name every module,
and every module it names must exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "architecture.md"
INDEX_LINE = re.compile(r"^- `((?:connector|triggers|actions)/[\w/]+\.py)`: \S", re.M)


def modules() -> set[str]:
    found = set()
    for package in ("connector", "triggers", "actions"):
        for path in (ROOT / package).rglob("*.py"):
            # An empty __init__ says nothing worth a line.
            if path.name == "__init__.py" and not path.read_text().strip():
                continue
            found.add(path.relative_to(ROOT).as_posix())
    return found


def test_the_index_names_every_module_and_only_modules_that_exist() -> None:
    listed = INDEX_LINE.findall(DOC.read_text(encoding="utf-8"))
    assert len(listed) == len(set(listed)), "a module is listed twice"
    present = modules()
    assert len(present) > 100
    assert sorted(present - set(listed)) == [], "modules missing from docs/architecture.md"
    assert sorted(set(listed) - present) == [], "docs/architecture.md names modules that are gone"


def test_every_module_path_the_prose_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(re.findall(r"`((?:connector|triggers|actions)/[\w/]+\.py)`", text))
    assert named
    assert sorted(p for p in named if not (ROOT / p).is_file()) == []
