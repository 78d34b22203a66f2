"""The triggers and actions this connector ships, as the one catalogue its commands hand on.

Only entry points (the CLI, the demo, tests and benchmarks) import this; everything below
them is given the catalogue, or the plans made with it.
"""

from __future__ import annotations

from actions import ACTIONS
from connector.plugins import Catalog
from triggers import TRIGGERS

CATALOG = Catalog(triggers=TRIGGERS, actions=ACTIONS)
