"""Flow files: YAML -> validated models, checked whole before anything starts.

Every problem names the file, line, column and the path inside the document
(``flows[2].actions[0].url``). All problems are collected, not just the first, so one run of
``connector check`` shows everything to fix.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)

from connector.errors import ConfigInvalid, ConfigProblem
from connector.logging import register_secret
from connector.plan import BoundAction, FlowPlan
from connector.plugins import Action, Catalog, PluginParams, Registry, Trigger
from connector.templates import check_params
from connector.units import Duration, RateLimitField, check_timeout, parse_rate_limit
from connector.yamlsource import Located, format_path, gc_paused, load

FLOW_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$"
CONNECTION_NAME = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"
SENDPULSE_MAX_PER_SECOND = 10.0
DEFAULT_RETRY_SCHEDULE = (5, 300, 1800, 7200, 18000, 36000, 36000)
MAX_API_TIMEOUT = timedelta(minutes=10)


# SendPulse's API, for connections and App Directory apps that name no other.
DEFAULT_BASE_URL = "https://api.sendpulse.com"


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Connection(Model):
    """One provider account: credentials and the rate limit all its calls share."""

    provider: Literal["sendpulse", "sendloop", "mailium"] = "sendpulse"
    client_id: str | None = None
    client_secret: SecretStr | None = None
    api_key: SecretStr | None = None
    base_url: AnyHttpUrl = AnyHttpUrl(DEFAULT_BASE_URL)
    # The figure in SendPulse's API introduction; SendPulse also states 10/s.
    rate_limit: RateLimitField = parse_rate_limit("3/s")
    timeout: Duration = timedelta(seconds=30)
    scopes: list[str] | None = None
    # The secret part of this connection's webhook intake URL; unset, the intake is off.
    webhook_token: SecretStr | None = None

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        return check_timeout(value, MAX_API_TIMEOUT)

    @field_validator("webhook_token")
    @classmethod
    def _webhook_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not re.fullmatch(
            r"[A-Za-z0-9_-]{16,128}", value.get_secret_value()
        ):
            raise ValueError(
                "webhook_token is 16 to 128 letters, digits, '-' or '_' "
                "(make one with: python -c 'import secrets; print(secrets.token_urlsafe(24))')"
            )
        return value

    @model_validator(mode="after")
    def _credentials(self) -> Connection:
        has_pair = self.client_id is not None and self.client_secret is not None
        if self.client_id is not None and self.client_secret is None:
            raise ValueError("client_id is set but client_secret is missing")
        if self.client_secret is not None and self.client_id is None:
            raise ValueError("client_secret is set but client_id is missing")
        if not has_pair and self.api_key is None:
            raise ValueError("give client_id and client_secret (or api_key)")
        if self.provider == "sendpulse" and self.rate_limit.per_second > SENDPULSE_MAX_PER_SECOND:
            raise ValueError(
                f"rate_limit {self.rate_limit} is above SendPulse's documented "
                f"{SENDPULSE_MAX_PER_SECOND:g} requests per second"
            )
        return self


class TriggerSpec(Model):
    type: str
    connection: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)


class ActionSpec(BaseModel):
    """An action; its params may sit under ``params:`` or beside ``type:``."""

    model_config = ConfigDict(extra="allow", frozen=True)

    type: str
    name: str | None = None
    connection: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)

    def all_params(self) -> dict[str, Any]:
        return {**(self.model_extra or {}), **self.params}


class Flow(Model):
    """One trigger and the actions each of its events goes to."""

    name: str = Field(pattern=FLOW_NAME)
    trigger: TriggerSpec
    actions: list[ActionSpec] = Field(min_length=1)
    every: Duration = timedelta(minutes=5)
    start: Literal["now", "all"] | datetime = "now"
    max_first_run_events: PositiveInt = 1000
    ordered: bool = False
    concurrency: PositiveInt = 10
    retry_schedule: list[Duration] = Field(
        default_factory=lambda: [timedelta(seconds=s) for s in DEFAULT_RETRY_SCHEDULE]
    )
    enabled: bool = True
    # Run this flow once for every active install of this SendPulse app (see apps:).
    installs_of: str | None = None

    @field_validator("every")
    @classmethod
    def _every(cls, value: timedelta) -> timedelta:
        if value < timedelta(seconds=10):
            raise ValueError("every must be at least 10s; SendPulse's rate limits need room")
        return value

    @field_validator("start")
    @classmethod
    def _start(cls, value: str | datetime) -> str | datetime:
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError("a start timestamp needs a time zone, e.g. 2026-01-01T00:00:00Z")
        return value


class Egress(Model):
    """Networks that webhook actions may reach although they are not public."""

    allow_networks: list[str] = Field(default_factory=list)

    @field_validator("allow_networks")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for network in value:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError as exc:
                raise ValueError(f"{network!r} is not a network (write 127.0.0.0/8)") from exc
        return value


class App(Model):
    """An app this connector is: a SendPulse App Directory app or a Sendloop/Mailium app."""

    provider: Literal["sendpulse", "sendloop", "mailium"] = "sendpulse"
    app_id: str | None = None
    client_id: str | None = None
    secret: SecretStr
    # sendpulse: the REST API the installs call; mailium: the OAuth server.
    base_url: AnyHttpUrl | None = None
    redirect_uri: AnyHttpUrl | None = None
    scopes: list[str] = Field(default_factory=list)
    rate_limit: RateLimitField = parse_rate_limit("3/s")
    timeout: Duration = timedelta(seconds=30)
    signature_window: Duration = timedelta(minutes=5)

    @field_validator("timeout")
    @classmethod
    def _timeout(cls, value: timedelta) -> timedelta:
        return check_timeout(value, MAX_API_TIMEOUT)

    @model_validator(mode="after")
    def _ids(self) -> App:
        if self.provider == "sendpulse" and not self.app_id:
            raise ValueError("a sendpulse app needs app_id (from the App Directory)")
        if self.provider != "sendpulse" and (not self.client_id or self.redirect_uri is None):
            raise ValueError(f"a {self.provider} app needs client_id and redirect_uri")
        return self


class FlowFile(Model):
    """The whole document: connections, flows, and egress rules."""

    connections: dict[str, Connection] = Field(default_factory=dict)
    flows: list[Flow] = Field(default_factory=list)
    egress: Egress = Field(default_factory=Egress)
    apps: dict[str, App] = Field(default_factory=dict)


class FlowFileDoc(Model):
    """Top-level shape only; each part is validated on its own so one error hides no other."""

    connections: dict[str, Any] = Field(default_factory=dict)
    flows: list[Any] = Field(default_factory=list)
    egress: dict[str, Any] = Field(default_factory=dict)
    apps: dict[str, Any] = Field(default_factory=dict)


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


def _errors_to_problems(
    located: Located, exc: ValidationError, prefix: tuple[str | int, ...]
) -> list[ConfigProblem]:
    problems = []
    for error in exc.errors(include_url=False):
        loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and "[" in part))
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = f"unknown key {loc[-1]!r}" if loc else "unknown key"
        elif error["type"] == "missing":
            message = f"{loc[-1]!r} is required" if loc else "a value is required"
        elif message.startswith("Value error, "):
            message = message.removeprefix("Value error, ")
        problems.append(located.problem((*prefix, *loc), message))
    return problems


def _params_problems(
    located: Located,
    model: type[PluginParams],
    params: dict[str, Any],
    base: tuple[str | int, ...],
    top_level: set[str],
) -> tuple[PluginParams | None, list[ConfigProblem]]:
    try:
        return model.model_validate(params), []
    except ValidationError as exc:
        problems = []
        for problem_exc in _split(exc):
            loc = problem_exc["loc"]
            first = loc[0] if loc else None
            prefix = base if first in top_level else (*base, "params")
            problems.extend(_errors_to_problems(located, _single(model, problem_exc), prefix))
        return None, problems


def _split(exc: ValidationError) -> list[Any]:
    return list(exc.errors(include_url=False))


def _single(model: type[BaseModel], error: Any) -> ValidationError:
    return ValidationError.from_exception_data(model.__name__, [error])


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
        problems += _errors_to_problems(located, exc, ())
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
            problems += _errors_to_problems(located, exc, ("connections", name))

    apps: dict[str, App] = {}
    for name, raw in doc.apps.items():
        try:
            apps[name] = App.model_validate(raw)
        except ValidationError as exc:
            problems += _errors_to_problems(located, exc, ("apps", name))
        else:
            register_secret(apps[name].secret.get_secret_value())

    egress = Egress()
    try:
        egress = Egress.model_validate(doc.egress)
    except ValidationError as exc:
        problems += _errors_to_problems(located, exc, ("egress",))

    plans: list[FlowPlan] = []
    seen_names: dict[str, int] = {}
    for index, raw in enumerate(doc.flows):
        where = ("flows", index)
        try:
            flow = Flow.model_validate(raw)
        except ValidationError as exc:
            problems += _errors_to_problems(located, exc, where)
            problems += _salvaged_flow_problems(
                located, raw, exc, where, connections, doc.connections, triggers, actions, apps
            )
            # A flow with other problems still takes its name: a later flow cannot reuse it.
            raw_name = raw.get("name") if isinstance(raw, dict) else None
            if isinstance(raw_name, str):
                if raw_name in seen_names:
                    first = seen_names[raw_name]
                    problems.append(_duplicate_name(located, where, raw_name, first))
                else:
                    seen_names[raw_name] = index
            continue
        if flow.name in seen_names:
            problems.append(_duplicate_name(located, where, flow.name, seen_names[flow.name]))
            continue
        seen_names[flow.name] = index
        plan, flow_problems = _check_flow(
            located, flow, where, connections, doc.connections, triggers, actions, apps
        )
        problems += flow_problems
        if not flow_problems and plan is not None:
            plans.append(plan)

    if problems:
        raise ConfigInvalid(_once_per_unset_variable(problems, located.problems))
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


def _duplicate_name(
    located: Located, where: tuple[str | int, ...], name: str, first: int
) -> ConfigProblem:
    return located.problem(
        (*where, "name"), f"flow name {name!r} is already used by flows[{first}]"
    )


def _once_per_unset_variable(
    problems: list[ConfigProblem], loader: list[ConfigProblem]
) -> list[ConfigProblem]:
    """Drop what a value's check says about a value that was never set.

    An unset ``${VAR}`` is reported by the loader; the empty value left in its place then
    fails its own check too (a webhook secret that is not ``whsec_``), which says nothing new.
    """
    unset = {p.path for p in loader}
    return [p for p in problems if p in loader or p.path not in unset]


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


def _resolve_connection(
    located: Located,
    path: tuple[str | int, ...],
    named: str | None,
    provider: str,
    connections: dict[str, Connection],
    raw_connections: dict[str, Any],
) -> tuple[str | None, list[ConfigProblem]]:
    if named is None:
        candidates = [n for n, c in raw_connections.items() if _provider_of(c) == provider]
        if len(candidates) == 1:
            return candidates[0], []
        if not candidates:
            return None, [located.problem(path, f"needs a {provider} connection; none is defined")]
        return None, [
            located.problem(
                path,
                f"several {provider} connections are defined ({', '.join(candidates)}); "
                "name one with 'connection:'",
            )
        ]
    if named not in raw_connections:
        known = ", ".join(sorted(raw_connections)) or "none defined"
        return None, [
            located.problem((*path, "connection"), f"unknown connection {named!r}; known: {known}")
        ]
    actual = _provider_of(raw_connections[named])
    if actual != provider:
        return None, [
            located.problem(
                (*path, "connection"),
                f"connection {named!r} is a {actual} connection; this needs {provider}",
            )
        ]
    return named, []


def _provider_of(raw: Any) -> str:
    if isinstance(raw, Connection):
        return raw.provider
    if isinstance(raw, dict):
        return str(raw.get("provider", "sendpulse"))
    return "sendpulse"


def _scope_problems(
    located: Located,
    path: tuple[str | int, ...],
    connection: str | None,
    plugin: type[Trigger] | type[Action[Any]],
    connections: dict[str, Connection],
) -> list[ConfigProblem]:
    """A connection granted a list of scopes must include the plugin's."""
    needed = plugin.scope
    granted = connections[connection].scopes if connection in connections else None
    if not needed or granted is None or needed in granted:
        return []
    return [
        located.problem(
            path,
            f"{plugin.key} needs the {needed!r} scope, but connection {connection!r} was "
            f"granted only: {', '.join(granted) or 'none'}",
        )
    ]


def _installs_problems(
    located: Located,
    flow: Flow,
    where: tuple[str | int, ...],
    apps: dict[str, App],
    trigger_cls: type[Trigger] | None,
) -> list[ConfigProblem]:
    """A per-install flow names a SendPulse app and leaves the trigger's connection out."""
    name = flow.installs_of
    app = apps.get(name or "")
    if app is None:
        known = ", ".join(sorted(apps)) or "none defined"
        return [located.problem((*where, "installs_of"), f"unknown app {name!r}; known: {known}")]
    problems = []
    if app.provider != "sendpulse":
        problems.append(
            located.problem(
                (*where, "installs_of"),
                f"app {name!r} is a {app.provider} app; installs_of takes a sendpulse app",
            )
        )
    if flow.trigger.connection is not None:
        problems.append(
            located.problem(
                (*where, "trigger", "connection"),
                "a flow with installs_of runs on each install's own connection; "
                "remove 'connection'",
            )
        )
    needed = trigger_cls.scope if trigger_cls is not None else None
    if trigger_cls is not None and needed and app.scopes and needed not in app.scopes:
        problems.append(
            located.problem(
                (*where, "trigger", "type"),
                f"{trigger_cls.key} needs the {needed!r} scope, but app {name!r} was "
                f"granted only: {', '.join(app.scopes)}",
            )
        )
    return problems


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
        problems += _installs_problems(located, flow, where, apps, trigger_cls)
    if trigger_cls is None:
        problems.append(
            located.problem((*tpath, "type"), triggers.unknown_message(flow.trigger.type))
        )
    elif per_install:
        tparams, found = _params_problems(
            located, trigger_cls.Params, flow.trigger.params, tpath, set()
        )
        problems += found
    else:
        connection, found = _resolve_connection(
            located,
            tpath,
            flow.trigger.connection,
            trigger_cls.provider,
            connections,
            raw_connections,
        )
        problems += found
        problems += _scope_problems(located, tpath, connection, trigger_cls, connections)
        if connection and connection != flow.trigger.connection:
            flow = flow.model_copy(
                update={"trigger": flow.trigger.model_copy(update={"connection": connection})}
            )
        tparams, found = _params_problems(
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
            connection, found = _resolve_connection(
                located,
                apath,
                spec.connection,
                action_cls.provider,
                connections,
                raw_connections,
            )
            problems += found
            problems += _scope_problems(located, apath, connection, action_cls, connections)
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
        params, found = _params_problems(
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
