"""Templated action params: any string may be a Jinja2 template over ``event`` and ``flow``.

Templates render in Jinja2's sandboxed environment with ``StrictUndefined``, so a missing
field is an error, never an empty string. They are compiled and their variables checked
against the trigger's declared payload fields when the flow file is loaded, so a typo fails
``connector check`` rather than a delivery at 3 a.m. Attributes starting with ``_`` are
refused at load time as well as by the sandbox at render time.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from functools import lru_cache
from typing import Any, TypeVar

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ValidationError

from connector.errors import FatalError

Path = tuple[str | int, ...]
FLOW_FIELDS = frozenset({"name", "trigger"})
ROOTS = frozenset({"event", "flow"})
M = TypeVar("M", bound=BaseModel)

ENV = ImmutableSandboxedEnvironment(
    undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
)


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def _compiled(source: str) -> Any:
    return ENV.from_string(source)


def _fields_used(tree: nodes.Template, root: str) -> set[str]:
    used: set[str] = set()
    for attr in tree.find_all(nodes.Getattr):
        if isinstance(attr.node, nodes.Name) and attr.node.name == root:
            used.add(attr.attr)
    for item in tree.find_all(nodes.Getitem):
        if (
            isinstance(item.node, nodes.Name)
            and item.node.name == root
            and isinstance(item.arg, nodes.Const)
            and isinstance(item.arg.value, str)
        ):
            used.add(item.arg.value)
    return used


def problems_in(source: str, payload_fields: frozenset[str] | None) -> list[str]:
    """What is wrong with one template; empty when it is fine.

    ``payload_fields`` None (or empty: a trigger that declares none) skips the field check.
    """
    try:
        tree = ENV.parse(source)
    except TemplateError as exc:
        return [f"template does not compile: {exc}"]
    found: list[str] = []
    for node in tree.find_all(nodes.Getattr):
        if node.attr.startswith("_"):
            found.append(f"template uses the attribute {node.attr!r}, which is not allowed")
    for item in tree.find_all(nodes.Getitem):
        if isinstance(item.arg, nodes.Const) and str(item.arg.value).startswith("_"):
            found.append(f"template uses the key {item.arg.value!r}, which is not allowed")
    names = {n.name for n in tree.find_all(nodes.Name) if n.ctx == "load"}
    assigned = {n.name for n in tree.find_all(nodes.Name) if n.ctx in ("store", "param")}
    for name in sorted(names - assigned - ROOTS):
        found.append(f"template uses {name!r}; only 'event' and 'flow' are available")
    if payload_fields:
        for field in sorted(_fields_used(tree, "event") - payload_fields):
            found.append(
                f"event has no field {field!r}; this trigger's events have: "
                f"{', '.join(sorted(payload_fields))}"
            )
    for field in sorted(_fields_used(tree, "flow") - FLOW_FIELDS):
        found.append(f"flow has no field {field!r}; use flow.name or flow.trigger")
    if not found:
        try:
            _compiled(source)
        except TemplateError as exc:
            found.append(f"template does not compile: {exc}")
    return found


def _strings(value: Any, path: Path) -> Iterator[tuple[Path, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _strings(getattr(value, name), (*path, name))
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)))
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index))


def check_params(
    params: BaseModel, payload_fields: frozenset[str] | None
) -> list[tuple[Path, str]]:
    """Every template problem in an action's params, with the path to the param."""
    found: list[tuple[Path, str]] = []
    for path, text in _strings(params, ()):
        if is_template(text):
            found.extend((path, message) for message in problems_in(text, payload_fields))
    return found


def has_templates(params: BaseModel) -> bool:
    return any(is_template(text) for _, text in _strings(params, ()))


def _render(value: Any, context: Mapping[str, Any], path: Path) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            return _compiled(value).render(context)
        except TemplateError as exc:
            where = ".".join(str(p) for p in path)
            raise FatalError(f"template in {where} failed: {exc}") from None
    if isinstance(value, BaseModel):
        return {
            name: _render(getattr(value, name), context, (*path, name))
            for name in type(value).model_fields
        }
    if isinstance(value, Mapping):
        return {key: _render(item, context, (*path, str(key))) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_render(item, context, (*path, i)) for i, item in enumerate(value)]
    return value


def context_for(payload: Mapping[str, Any], flow: str, trigger: str) -> dict[str, Any]:
    return {"event": payload, "flow": {"name": flow, "trigger": trigger}}


def render_params(params: M, context: Mapping[str, Any]) -> M:
    """The params with every template rendered, validated again by their model."""
    if not has_templates(params):
        return params
    rendered = _render(params, context, ())
    try:
        return type(params).model_validate(rendered)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FatalError(f"rendered param {where} is invalid: {first['msg']}") from None
