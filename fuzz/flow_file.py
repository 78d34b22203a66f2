"""Coverage-guided fuzzing of the flow-file loader (``make fuzz``): YAML with positions,
``${VAR}`` expansion and validation.

Whatever the text, ``parse`` returns a config or raises ``ConfigInvalid`` listing located
problems; anything else is a crash that libFuzzer saves to the artifact folder.
"""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports(include=["connector"]):
    from connector.catalog import CATALOG
    from connector.config import parse
    from connector.errors import ConfigInvalid

ENV = {"CLIENT_ID": "abc", "CLIENT_SECRET": "s3cr3t", "EMPTY": ""}


def test_one_input(data: bytes) -> None:
    text = data.decode("utf-8", errors="replace")
    try:
        parse(text, CATALOG, "fuzz.yaml", env=ENV)
    except ConfigInvalid as exc:
        if not exc.problems:
            raise AssertionError("ConfigInvalid without a problem") from exc
        for problem in exc.problems:
            str(problem)


def main() -> None:
    atheris.Setup(sys.argv, test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
