"""Flow files: YAML -> validated models, checked whole before anything starts.

Every problem names the file, line, column and the path inside the document
(``flows[2].actions[0].url``). All problems are collected, not just the first, so one run of
``connector check`` shows everything to fix.

What comes out is a :class:`Config`: the document (its models are in
:mod:`connector.flow_models`) and one :class:`connector.plan.FlowPlan` per flow, checked
against the catalogue of triggers and actions handed in. The checks that locate a problem
are in :mod:`connector.flow_checks`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError

from connector import flow_checks as checks
from connector.errors import ConfigInvalid, ConfigProblem
from connector.flow_models import (
    CONNECTION_NAME,
    DEFAULT_BASE_URL,
    DEFAULT_RETRY_SCHEDULE,
    ActionSpec,
    App,
    Connection,
    Egress,
    Flow,
    FlowFile,
    FlowFileDoc,
    TriggerSpec,
)
from connector.logging import register_secret
from connector.plan import BoundAction, FlowPlan
from connector.plugins import Action, Catalog, PluginParams, Registry, Trigger
from connector.templates import check_params
from connector.yamlsource import Located, format_path, gc_paused, load

# The models live in connector.flow_models; callers take them from here, with the loader.
__all__ = [
    "DEFAULT_BASE_URL",
    "DEFAULT_RETRY_SCHEDULE",
    "ActionSpec",
    "App",
    "Config",
    "Connection",
    "Egress",
    "Flow",
    "FlowFile",
    "TriggerSpec",
    "json_schema",
    "load_file",
    "parse",
]


@dataclass(frozen=True)
class Config:
    """A loaded, checked flow file: the document as written, and one plan per flow that runs.

    ``document.flows`` are the file's flows; ``plans`` are what runs, which differ once
    per-install flows are expanded into their instances (:mod:`connector.instances`).
    """

    file: str
    document: FlowFile
    plans: tuple[FlowPlan, ...]
    # The triggers and actions the file was checked against; a reload checks against them too.
    catalog: Catalog

    @property
    def connections(self) -> dict[str, Connection]:
        return self.document.connections

    @property
    def flows(self) -> list[Flow]:
        return [plan.flow for plan in self.plans]

    def plan(self, name: str) -> FlowPlan | None:
        return self._by_name.get(name)

    @cached_property
    def _by_name(self) -> dict[str, FlowPlan]:
        return {plan.flow.name: plan for plan in self.plans}

    @property
    def apps(self) -> dict[str, App]:
        return self.document.apps


def parse(
    text: str, catalog: Catalog, file: str = "<flows>", env: Mapping[str, str] | None = None
) -> Config:
    """Check a flow document against ``catalog``; :class:`ConfigInvalid` lists every problem."""
    triggers, actions = catalog.triggers, catalog.actions
    located = load(text, file, env)
    problems = list(located.problems)
    if problems and located.data is None:
        raise ConfigInvalid(problems)
    data = located.data
    if not isinstance(data, dict):
        raise ConfigInvalid(
            [located.problem((), "a flow file is a mapping with 'connections' and 'flows'")]
        )
    try:
        doc = FlowFileDoc.model_validate(data)
    except ValidationError as exc:
        problems += checks.errors_to_problems(located, exc, ())
        # An unknown top-level key must not hide the problems of the parts that are known.
        known = {k: v for k, v in data.items() if k in FlowFileDoc.model_fields}
        try:
            doc = FlowFileDoc.model_validate(known)
        except ValidationError:
            raise ConfigInvalid(problems) from None

    connections: dict[str, Connection] = {}
    for name, raw in doc.connections.items():
        if not re.fullmatch(CONNECTION_NAME, name):
            problems.append(
                located.problem(
                    ("connections", name),
                    "a connection name uses letters, digits, '-' and '_' (at most 64)",
                )
            )
        try:
            connections[name] = Connection.model_validate(raw)
        except ValidationError as exc:
            problems += checks.errors_to_problems(located, exc, ("connections", name))

    apps: dict[str, App] = {}
    for name, raw in doc.apps.items():
        try:
            apps[name] = App.model_validate(raw)
        except ValidationError as exc:
            problems += checks.errors_to_problems(located, exc, ("apps", name))
        else:
            register_secret(apps[name].secret.get_secret_value())

    egress = Egress()
    try:
        egress = Egress.model_validate(doc.egress)
    except ValidationError as exc:
        problems += checks.errors_to_problems(located, exc, ("egress",))

    plans: list[FlowPlan] = []
    seen_names: dict[str, int] = {}
    for index, raw in enumerate(doc.flows):
        where = ("flows", index)
        try:
            flow = Flow.model_validate(raw)
        except ValidationError as exc:
            problems += checks.errors_to_problems(located, exc, where)
            problems += _salvaged_flow_problems(
                located, raw, exc, where, connections, doc.connections, triggers, actions, apps
            )
            # A flow with other problems still takes its name: a later flow cannot reuse it.
            raw_name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(raw_name, str):
                if raw_name in seen_names:
                    first = seen_names[raw_name]
                    problems.append(checks.duplicate_name(located, where, raw_name, first))
                else:
                    seen_names[raw_name] = index
            continue
        if flow.name in seen_names:
            problems.append(checks.duplicate_name(located, where, flow.name, seen_names[flow.name]))
            continue
        seen_names[flow.name] = index
        plan, flow_problems = _check_flow(
            located, flow, where, connections, doc.connections, triggers, actions, apps
        )
        problems += flow_problems
        if not flow_problems and plan is not None:
            plans.append(plan)

    if problems:
        raise ConfigInvalid(checks.once_per_unset_variable(problems, located.problems))
    flows = [plan.flow for plan in plans]
    document = FlowFile(connections=connections, flows=flows, egress=egress, apps=apps)
    for connection in connections.values():
        for secret in (connection.client_secret, connection.api_key, connection.webhook_token):
            if secret is not None:
                register_secret(secret.get_secret_value())
    for plan in plans:
        for bound in plan.actions:
            _register_param_secrets(bound.params)
    return Config(file=file, document=document, plans=tuple(plans), catalog=catalog)


_PLACEHOLDER_ACTION = {"type": "_invalid_"}


def _salvaged_flow_problems(
    located: Located,
    raw: Any,
    exc: ValidationError,
    where: tuple[str | int, ...],
    connections: dict[str, Connection],
    raw_connections: dict[str, Any],
    triggers: Registry[type[Trigger]],
    actions: Registry[type[Action[Any]]],
    apps: dict[str, App],
) -> list[ConfigProblem]:
    """The trigger and action problems of a flow whose own fields failed.

    Each failed field is replaced by a harmless stand-in, the flow checked as usual, and
    whatever is reported under a stand-in dropped: it was reported already.
    """
    if not isinstance(raw, dict):
        return []
    patched = dict(raw)
    failed: set[tuple[str | int, ...]] = set()
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc:
            return []
        field = loc[0]
        if (
            field == "actions"
            and len(loc) > 1
            and isinstance(loc[1], int)
            and isinstance(raw.get("actions"), list)
        ):
            failed.add(("actions", loc[1]))
        else:
            failed.add((field,))
    if ("installs_of",) in failed:
        # Whether the trigger needs a connection depends on it: leave the trigger alone.
        failed.add(("trigger",))
    for path in failed:
        if path == ("name",):
            patched["name"] = "invalid"
        elif path == ("trigger",):
            patched["trigger"] = {"type": "_invalid_"}
        elif path == ("actions",):
            patched["actions"] = [_PLACEHOLDER_ACTION]
        elif path[0] == "actions" and ("actions",) not in failed:
            patched["actions"] = [
                _PLACEHOLDER_ACTION if ("actions", i) in failed else action
                for i, action in enumerate(raw["actions"])
            ]
        else:
            patched.pop(str(path[0]), None)
    try:
        flow = Flow.model_validate(patched)
    except ValidationError:
        return []
    _, found = _check_flow(
        located, flow, where, connections, raw_connections, triggers, actions, apps
    )
    hidden = [format_path((*where, *path)) for path in failed]
    return [
        problem
        for problem in found
        if not any(
            problem.path == prefix or problem.path.startswith((prefix + ".", prefix + "["))
            for prefix in hidden
        )
    ]


def _register_param_secrets(params: PluginParams) -> None:
    # A webhook URL may hold its receiver's secret (Slack, Zapier) in the path or query.
    log_secrets = getattr(params, "log_secrets", None)
    if callable(log_secrets):
        for value in log_secrets():
            register_secret(value)
    for value in params.__dict__.values():
        values = value if isinstance(value, list) else [value]
        for item in values:
            if isinstance(item, SecretStr):
                register_secret(item.get_secret_value())


def _check_flow(
    located: Located,
    flow: Flow,
    where: tuple[str | int, ...],
    connections: dict[str, Connection],
    raw_connections: dict[str, Any],
    triggers: Registry[type[Trigger]],
    actions: Registry[type[Action[Any]]],
    apps: dict[str, App],
) -> tuple[FlowPlan | None, list[ConfigProblem]]:
    problems: list[ConfigProblem] = []
    tparams: PluginParams | None = None
    trigger_cls: type[Trigger] | None = triggers.get(flow.trigger.type)
    tpath = (*where, "trigger")
    per_install = flow.installs_of is not None
    if per_install:
        problems += checks.installs_problems(located, flow, where, apps, trigger_cls)
    if trigger_cls is None:
        problems.append(
            located.problem((*tpath, "type"), triggers.unknown_message(flow.trigger.type))
        )
    elif per_install:
        tparams, found = checks.params_problems(
            located, trigger_cls.Params, flow.trigger.params, tpath, set()
        )
        problems += found
    else:
        connection, found = checks.resolve_connection(
            located,
            tpath,
            flow.trigger.connection,
            trigger_cls.provider,
            connections,
            raw_connections,
        )
        problems += found
        problems += checks.scope_problems(located, tpath, connection, trigger_cls, connections)
        if connection and connection != flow.trigger.connection:
            flow = flow.model_copy(
                update={"trigger": flow.trigger.model_copy(update={"connection": connection})}
            )
        tparams, found = checks.params_problems(
            located, trigger_cls.Params, flow.trigger.params, tpath, set()
        )
        problems += found
        if isinstance(flow.start, datetime) and trigger_cls.strategy != "watermark":
            problems.append(
                located.problem(
                    (*where, "start"),
                    f"a start timestamp works only with watermark triggers; "
                    f"{trigger_cls.key} uses a {trigger_cls.strategy} diff (use now or all)",
                )
            )

    bound: list[BoundAction] = []
    new_actions = []
    for a_index, spec in enumerate(flow.actions):
        apath = (*where, "actions", a_index)
        action_cls = actions.get(spec.type)
        if action_cls is None:
            problems.append(located.problem((*apath, "type"), actions.unknown_message(spec.type)))
            new_actions.append(spec)
            continue
        if action_cls.provider is not None and per_install and spec.connection is None:
            # Filled in per install: each instance acts on its own install's account.
            pass
        elif action_cls.provider is not None:
            connection, found = checks.resolve_connection(
                located,
                apath,
                spec.connection,
                action_cls.provider,
                connections,
                raw_connections,
            )
            problems += found
            problems += checks.scope_problems(located, apath, connection, action_cls, connections)
            if connection and connection != spec.connection:
                spec = spec.model_copy(update={"connection": connection})
        elif spec.connection is not None:
            problems.append(
                located.problem((*apath, "connection"), f"{spec.type} takes no connection")
            )
        extras = set(spec.model_extra or {})
        clash = extras & set(spec.params)
        for key in sorted(clash):
            problems.append(
                located.problem((*apath, key), f"{key!r} is given both here and under params")
            )
        params, found = checks.params_problems(
            located, action_cls.Params, spec.all_params(), apath, extras
        )
        problems += found
        if params is not None:
            fields = trigger_cls.payload_fields if trigger_cls is not None else None
            for loc, message in check_params(params, fields):
                prefix = apath if loc and loc[0] in extras else (*apath, "params")
                problems.append(located.problem((*prefix, *loc), message))
            bound.append(BoundAction(action_cls, params, spec.connection))
        # The raw params may hold secrets in plain text; the validated ones mask them.
        new_actions.append(ActionSpec(type=spec.type, name=spec.name, connection=spec.connection))
    flow = flow.model_copy(update={"actions": new_actions})
    if trigger_cls is None or tparams is None or len(bound) != len(new_actions):
        return None, problems
    return FlowPlan(flow, trigger_cls, tparams, tuple(bound)), problems


def load_file(path: str | Path, catalog: Catalog, env: Mapping[str, str] | None = None) -> Config:
    """Read and validate a flow file from disk."""
    file = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigInvalid([ConfigProblem(file, None, None, "", "file not found")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigInvalid(
            [ConfigProblem(file, None, None, "", f"cannot read the file: {exc}")]
        ) from None
    with gc_paused():
        return parse(text, catalog, file, env)


def json_schema(catalog: Catalog) -> dict[str, Any]:
    """The flow file's JSON Schema, with each trigger's and action's params spelt out."""
    schema = FlowFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "SendPulse connector flow file"
    defs = schema.setdefault("$defs", {})
    trigger_variants = []
    for trigger in catalog.triggers:
        params = trigger.Params.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        trigger_variants.append(
            {
                "type": "object",
                "description": trigger.summary,
                "properties": {
                    "type": {"const": trigger.key},
                    "connection": {"type": "string"},
                    "params": params,
                },
                "required": ["type"],
                "additionalProperties": False,
            }
        )
    action_variants = []
    for action in catalog.actions:
        params = action.Params.model_json_schema(ref_template="#/$defs/{model}")
        defs.update(params.pop("$defs", {}))
        properties = {
            "type": {"const": action.key},
            "name": {"type": "string"},
            "connection": {"type": "string"},
            "params": params,
            **params.get("properties", {}),
        }
        action_variants.append(
            {
                "type": "object",
                "description": action.summary,
                "properties": properties,
                "required": ["type"],
                "additionalProperties": False,
            }
        )
    flow = defs["Flow"]
    flow["properties"]["trigger"] = {"oneOf": trigger_variants}
    flow["properties"]["actions"] = {
        "type": "array",
        "minItems": 1,
        "items": {"oneOf": action_variants},
    }
    defs.pop("TriggerSpec", None)
    defs.pop("ActionSpec", None)
    return schema
