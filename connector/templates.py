"""Templated action params: any string may be a Jinja2 template over ``event`` and ``flow``.

Templates render in Jinja2's sandboxed environment with ``StrictUndefined``, so a missing
field is an error, never an empty string. They are compiled and their variables checked
against the trigger's declared payload fields when the flow file is loaded, so a typo fails
``connector check`` rather than a delivery at 3 a.m. Attributes starting with ``_`` are
refused at load time as well as by the sandbox at render time.

Event data comes from subscribers, so a field says what its text becomes (:data:`AS_HTML`,
:data:`AS_URL`) and each value is escaped for it: HTML-escaped in HTML, percent-encoded
(``/``, ``?``, ``#`` and ``&`` included) in a URL, whose scheme and host must be written
out before the first template expression.
"""

from __future__ import annotations

import re
import weakref
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Literal, TypeVar
from urllib.parse import quote, urlencode

from jinja2 import StrictUndefined, TemplateError, nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment
from pydantic import BaseModel, ValidationError

from connector.errors import FatalError

Path = tuple[str | int, ...]
FLOW_FIELDS = frozenset({"name", "trigger"})
ROOTS = frozenset({"event", "flow"})
M = TypeVar("M", bound=BaseModel)


class Encoded(str):
    """Text already percent-encoded for a URL (by ``urlencode``): not encoded again."""

    __slots__ = ()


@dataclass(frozen=True)
class RenderAs:
    """What a templated field's text becomes, so each value is escaped for it."""

    kind: Literal["text", "html", "url"]


AS_TEXT = RenderAs("text")
AS_HTML = RenderAs("html")
AS_URL = RenderAs("url")
# Scheme and host written out, up to the first "/", "?" or "#" after the host.
_URL_ORIGIN = re.compile(r"https?://[^/?#{}\s]+[/?#]", re.IGNORECASE)


def _url_value(value: Any) -> str:
    if isinstance(value, Encoded):
        return str(value)
    return quote(str(value), safe="")


def _urlencode(value: Any) -> Encoded:
    if isinstance(value, Mapping):
        return Encoded(urlencode({str(k): str(v) for k, v in value.items()}))
    return Encoded(quote(str(value), safe=""))


def _environment(**options: Any) -> ImmutableSandboxedEnvironment:
    return ImmutableSandboxedEnvironment(
        undefined=StrictUndefined, keep_trailing_newline=True, **options
    )


ENV = _environment(autoescape=False)
ENVS = {
    "text": ENV,
    "html": _environment(autoescape=True),
    "url": _environment(autoescape=False, finalize=_url_value),
}
# Jinja's own urlencode keeps "/", which is exactly what must not pass into a URL path.
ENVS["url"].filters["urlencode"] = _urlencode


def is_template(text: str) -> bool:
    return "{{" in text or "{%" in text or "{#" in text


@lru_cache(maxsize=4096)
def _compiled(source: str, kind: str = "text") -> Any:
    return ENVS[kind].from_string(source)


def _url_problems(source: str) -> list[str]:
    first = min(i for i in (source.find("{{"), source.find("{%"), source.find("{#")) if i >= 0)
    if not _URL_ORIGIN.match(source[:first]):
        return [
            "a templated URL must start with its scheme and host written out "
            "(https://host/...); event data may only go into the path or query"
        ]
    return []


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


def problems_in(
    source: str, payload_fields: frozenset[str] | None, render_as: RenderAs = AS_TEXT
) -> list[str]:
    """What is wrong with one template; empty when it is fine.

    ``payload_fields`` None (or empty: a trigger that declares none) skips the field check.
    """
    try:
        tree = ENV.parse(source)
    except TemplateError as exc:
        return [f"template does not compile: {exc}"]
    found: list[str] = _url_problems(source) if render_as.kind == "url" else []
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
            _compiled(source, render_as.kind)
        except TemplateError as exc:
            found.append(f"template does not compile: {exc}")
    return found


def _render_as(model: type[BaseModel], name: str, inherited: RenderAs) -> RenderAs:
    for marker in model.model_fields[name].metadata:
        if isinstance(marker, RenderAs):
            return marker
    return inherited


def _strings(
    value: Any, path: Path, render_as: RenderAs = AS_TEXT
) -> Iterator[tuple[Path, str, RenderAs]]:
    if isinstance(value, str):
        yield path, value, render_as
    elif isinstance(value, BaseModel):
        model = type(value)
        for name in model.model_fields:
            kind = _render_as(model, name, render_as)
            yield from _strings(getattr(value, name), (*path, name), kind)
    elif isinstance(value, Mapping):
        for key, item in value.items():
            yield from _strings(item, (*path, str(key)), render_as)
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            yield from _strings(item, (*path, index), render_as)


def check_params(
    params: BaseModel, payload_fields: frozenset[str] | None
) -> list[tuple[Path, str]]:
    """Every template problem in an action's params, with the path to the param."""
    found: list[tuple[Path, str]] = []
    for path, text, render_as in _strings(params, ()):
        if is_template(text):
            found.extend(
                (path, message) for message in problems_in(text, payload_fields, render_as)
            )
    return found


def has_templates(params: BaseModel) -> bool:
    """Whether any string in ``params`` is a template (remembered for frozen params)."""
    known = _templated.get(id(params))
    if known is not None and known[0]() is params:
        return known[1]
    found = any(is_template(text) for _, text, _ in _strings(params, ()))
    if params.model_config.get("frozen"):
        # The dispatcher asks for the same configured params at every delivery, and the walk
        # over the model cost a few percent of a delivery. Keyed by identity (params holding
        # a dict are unhashable), checked against a weak reference so a reused id is no hit.
        if len(_templated) >= _TEMPLATED_MAX:
            _templated.clear()
        _templated[id(params)] = (weakref.ref(params), found)
    return found


_templated: dict[int, tuple[weakref.ref[BaseModel], bool]] = {}
_TEMPLATED_MAX = 65536


def _render(value: Any, context: Mapping[str, Any], path: Path, render_as: RenderAs) -> Any:
    if isinstance(value, str):
        if not is_template(value):
            return value
        try:
            return str(_compiled(value, render_as.kind).render(context))
        except TemplateError as exc:
            where = ".".join(str(p) for p in path)
            raise FatalError(f"template in {where} failed: {exc}") from None
    if isinstance(value, BaseModel):
        model = type(value)
        return {
            name: _render(
                getattr(value, name), context, (*path, name), _render_as(model, name, render_as)
            )
            for name in model.model_fields
        }
    if isinstance(value, Mapping):
        return {
            key: _render(item, context, (*path, str(key)), render_as) for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_render(item, context, (*path, i), render_as) for i, item in enumerate(value)]
    return value


def context_for(payload: Mapping[str, Any], flow: str, trigger: str) -> dict[str, Any]:
    return {"event": payload, "flow": {"name": flow, "trigger": trigger}}


def render_params(params: M, context: Mapping[str, Any]) -> M:
    """The params with every template rendered, validated again by their model."""
    if not has_templates(params):
        return params
    rendered = _render(params, context, (), AS_TEXT)
    try:
        return type(params).model_validate(rendered)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"])
        raise FatalError(f"rendered param {where} is invalid: {first['msg']}") from None
