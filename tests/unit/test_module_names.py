"""The layout keeps one meaning per module name, so a name found in a log line or a traceback
points at one file."""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path

import pytest

from connector.auth import mailium_signing
from connector.errors import FatalError, SignatureInvalid
from connector.webhook_signing import secret_key

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("connector", "triggers", "actions")


def test_no_two_modules_share_a_base_name() -> None:
    where: dict[str, list[str]] = defaultdict(list)
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            if path.name != "__init__.py":
                where[path.name].append(str(path.relative_to(ROOT)))
    assert len(where) > 100  # the walk found the tree, not an empty folder
    shared = {name: paths for name, paths in where.items() if len(paths) > 1}
    assert shared == {}


def test_both_signature_checks_raise_the_one_error_of_the_tree() -> None:
    with pytest.raises(SignatureInvalid) as webhook:
        secret_key("not-a-whsec-secret")
    with pytest.raises(SignatureInvalid) as install:
        mailium_signing.verify_query("a=1", "secret", now=datetime.now(UTC))
    assert isinstance(webhook.value, FatalError)
    assert isinstance(install.value, FatalError)
