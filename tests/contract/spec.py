"""The contract checker lives in connector.contract (``connector check --live`` uses it too)."""

from connector.contract import (
    ERRATA,
    GENERAL_STATUSES,
    REFERENCE_EXTRAS,
    Contract,
    Exchange,
    Operation,
    read_exchanges,
    shared_contract,
)

__all__ = [
    "ERRATA",
    "GENERAL_STATUSES",
    "REFERENCE_EXTRAS",
    "Contract",
    "Exchange",
    "Operation",
    "read_exchanges",
    "shared_contract",
]
