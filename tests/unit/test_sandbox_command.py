"""`connector sandbox` flags turn into the right options, and bad ones are refused."""

from __future__ import annotations

import argparse

import pytest

from connector.cli import _parser
from connector.sandbox.command import options_from
from connector.sandbox.seed import parse_seed


def _args(*argv: str) -> argparse.Namespace:
    return _parser().parse_args(["sandbox", *argv])


def test_defaults() -> None:
    options = options_from(_args())
    # The demo account unless asked otherwise: an empty sandbox shows nothing to poll.
    assert (options.host, options.port, options.seed, options.generate) == (
        "127.0.0.1",
        8525,
        "demo",
        0.0,
    )
    assert options_from(_args("--seed", "none")).seed is None
    assert options.settings.rate_limit == 10.0
    assert options.settings.token_ttl == 3600


def test_flags() -> None:
    argv = "--port 9000 --seed demo --generate 2.5 --rate-limit off --per-minute 100"
    argv += " --latency 0.1 --fault-rate 500=0.2 --webhook-batch 10"
    options = options_from(_args(*argv.split()))
    assert (options.port, options.seed, options.generate) == (9000, "demo", 2.5)
    assert options.settings.rate_limit is None
    assert options.settings.per_minute == 100
    assert options.settings.latency == 0.1
    assert options.settings.webhook_batch == 10
    assert options.fault_rates == {"500": 0.2}


def test_bad_fault_rate_is_refused() -> None:
    with pytest.raises(ValueError):
        options_from(_args("--fault-rate", "teapot=1"))
    with pytest.raises(ValueError):
        options_from(_args("--fault-rate", "500"))


def test_seed_specs() -> None:
    assert parse_seed("demo+big:1_000") == [("demo", 0), ("big", 1000)]
    assert parse_seed("big") == [("big", 100_000)]
    for bad in ("", "demo:1", "big:x", "small"):
        with pytest.raises(ValueError):
            parse_seed(bad)
