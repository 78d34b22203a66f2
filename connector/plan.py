"""A flow as it runs: its trigger and each action bound to their classes, params and connection.

The flow file is checked once (:func:`connector.config.parse`); what comes out is one plan
per flow, so that no part of the worker looks a plugin up by name or its params up by index.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from connector.flow_models import Flow
from connector.plugins import Action, PluginParams, Trigger


@dataclass(frozen=True)
class BoundAction:
    """One action of a flow: its class, its checked params and the connection it acts on."""

    action: type[Action[Any]]
    params: PluginParams
    # None for actions that call no provider, and for a per-install flow's SendPulse actions
    # until an install fills it in (see connector.instances).
    connection: str | None

    @property
    def key(self) -> str:
        return self.action.key


@dataclass(frozen=True)
class FlowPlan:
    """One flow: the checked model, its trigger class and params, its bound actions."""

    flow: Flow
    trigger: type[Trigger]
    params: PluginParams
    actions: tuple[BoundAction, ...]

    @property
    def name(self) -> str:
        return self.flow.name

    @property
    def connection(self) -> str | None:
        """The connection the trigger polls (None only for a per-install flow's template)."""
        return self.flow.trigger.connection
