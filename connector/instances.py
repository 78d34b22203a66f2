"""Per-install flows: one flow in the file, one running instance per active app install.

A flow with ``installs_of: <app>`` names no connection. Each install of that SendPulse app
(stored by the App Directory login handler as the connection ``<app>-<user id>``) gets an
instance named ``<flow>@<connection>``: its own cursor and snapshot, its trigger and its
SendPulse actions on that install's account. An uninstall removes the install, and with it
the instance, at the next refresh.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from connector.config import Config
from connector.plan import FlowPlan


def instance_name(flow: str, connection: str) -> str:
    return f"{flow}@{connection}"


def apps_used(config: Config) -> list[str]:
    return sorted({f.installs_of for f in config.flows if f.installs_of is not None})


def expand(config: Config, installs: Mapping[str, list[str]]) -> Config:
    """``config`` with every per-install flow replaced by its instances."""
    if not apps_used(config):
        return config
    plans: list[FlowPlan] = []
    for plan in config.plans:
        if plan.flow.installs_of is None:
            plans.append(plan)
            continue
        plans += [
            _instance(plan, connection) for connection in installs.get(plan.flow.installs_of, [])
        ]
    return replace(config, plans=tuple(plans))


def _instance(plan: FlowPlan, connection: str) -> FlowPlan:
    """The plan of ``plan`` run on one install: its trigger and SendPulse actions on it."""
    flow = plan.flow
    bound = tuple(
        replace(action, connection=connection)
        if action.action.provider is not None and action.connection is None
        else action
        for action in plan.actions
    )
    specs = [
        spec.model_copy(update={"connection": action.connection})
        for spec, action in zip(flow.actions, bound, strict=True)
    ]
    instance = flow.model_copy(
        update={
            "name": instance_name(flow.name, connection),
            "trigger": flow.trigger.model_copy(update={"connection": connection}),
            "actions": specs,
        }
    )
    return replace(plan, flow=instance, actions=bound)
