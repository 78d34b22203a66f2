"""Per-install flows: one flow in the file, one running instance per active app install.

A flow with ``installs_of: <app>`` names no connection. Each install of that SendPulse app
(stored by the App Directory login handler as the connection ``<app>-<user id>``) gets an
instance named ``<flow>@<connection>``: its own cursor and snapshot, its trigger and its
SendPulse actions on that install's account. An uninstall removes the install, and with it
the instance, at the next refresh.
"""

from __future__ import annotations

from collections.abc import Mapping

from connector.config import Config, Flow


def instance_name(flow: str, connection: str) -> str:
    return f"{flow}@{connection}"


def apps_used(config: Config) -> list[str]:
    return sorted({f.installs_of for f in config.flows if f.installs_of is not None})


def expand(config: Config, installs: Mapping[str, list[str]]) -> Config:
    """``config`` with every per-install flow replaced by its instances."""
    from actions import ACTIONS

    if not apps_used(config):
        return config
    flows: list[Flow] = []
    trigger_params = {}
    action_params = {}
    for flow in config.flows:
        if flow.installs_of is None:
            flows.append(flow)
            trigger_params[flow.name] = config.trigger_params[flow.name]
            action_params[flow.name] = config.action_params[flow.name]
            continue
        for connection in installs.get(flow.installs_of, []):
            actions = []
            for spec in flow.actions:
                action = ACTIONS.get(spec.type)
                if action is not None and action.provider is not None and spec.connection is None:
                    spec = spec.model_copy(update={"connection": connection})
                actions.append(spec)
            name = instance_name(flow.name, connection)
            flows.append(
                flow.model_copy(
                    update={
                        "name": name,
                        "trigger": flow.trigger.model_copy(update={"connection": connection}),
                        "actions": actions,
                    }
                )
            )
            trigger_params[name] = config.trigger_params[flow.name]
            action_params[name] = config.action_params[flow.name]
    document = config.document.model_copy(update={"flows": flows})
    return config.model_copy(
        update={
            "document": document,
            "trigger_params": trigger_params,
            "action_params": action_params,
        }
    )
