"""The checks of a flow file that say where a problem is: pydantic's errors turned into
located problems, and a flow's connections, scopes and app installs checked against the
rest of the document. :func:`connector.config.parse` runs them and collects what they find.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError

from connector.errors import ConfigProblem
from connector.flow_models import App, Connection, Flow
from connector.plugins import Action, PluginParams, Trigger
from connector.yamlsource import Located


def errors_to_problems(
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


def params_problems(
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
            problems.extend(errors_to_problems(located, _single(model, problem_exc), prefix))
        return None, problems


def _split(exc: ValidationError) -> list[Any]:
    return list(exc.errors(include_url=False))


def _single(model: type[BaseModel], error: Any) -> ValidationError:
    return ValidationError.from_exception_data(model.__name__, [error])


def duplicate_name(
    located: Located, where: tuple[str | int, ...], name: str, first: int
) -> ConfigProblem:
    return located.problem(
        (*where, "name"), f"flow name {name!r} is already used by flows[{first}]"
    )


def once_per_unset_variable(
    problems: list[ConfigProblem], loader: list[ConfigProblem]
) -> list[ConfigProblem]:
    """Drop what a value's check says about a value that was never set.

    An unset ``${VAR}`` is reported by the loader; the empty value left in its place then
    fails its own check too (a webhook secret that is not ``whsec_``), which says nothing new.
    """
    unset = {p.path for p in loader}
    return [p for p in problems if p in loader or p.path not in unset]


def resolve_connection(
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


def scope_problems(
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


def installs_problems(
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
