"""Sandbox seeding and paging: how long `--seed big:N` takes and what one page costs.

These were gates inside the functional tests (seed under 3 s, a page under 1 ms); on a
loaded machine they failed for reasons that had nothing to do with the code, so they are
figures here instead.

    python bench/sandbox_seed.py [--size 200000]

Targets: seeding 200,000 subscribers under 3 s; one page of 100 under 1 ms of CPU.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from connector.sandbox.seed import apply_seed
from connector.sandbox.state import State


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=200_000)
    args = parser.parse_args()
    state = State()
    started = time.perf_counter()
    apply_seed(state, f"big:{args.size}")
    seeded = time.perf_counter() - started
    book = state.books[1]
    pages = range(0, args.size, max(args.size // 100, 100))
    started = time.process_time()
    for offset in pages:
        book.page(100, offset)
    per_page = (time.process_time() - started) / len(pages)
    print(f"seed big:{args.size}: {seeded:.2f} s (target < 3 s)")
    print(f"one page of 100 at {len(pages)} offsets: {per_page * 1000:.3f} ms CPU (target < 1 ms)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
