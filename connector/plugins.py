"""The shapes of triggers and actions, and the registries that list them.

A trigger is a small class with a ``key``, a ``Params`` model checked when the flow file is
loaded, the SendPulse ``scope`` it needs, its change-detection ``strategy`` and the fields of
the payload it emits. An action has the same shape. The engine, not the plugin, stores cursors
and writes events; plugins only talk to the provider through the client they are given.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, ClassVar, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict

from connector.errors import ConnectorError

Strategy = Literal["watermark", "snapshot", "fingerprint"]
Provider = Literal["sendpulse", "sendloop", "mailium"]


class PluginParams(BaseModel):
    """Base for every trigger's and action's params: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class NoParams(PluginParams):
    """For plugins that take no params."""


class Trigger:
    """A source of events: declares what it watches and how changes are found."""

    key: ClassVar[str]
    Params: ClassVar[type[PluginParams]] = NoParams
    provider: ClassVar[Provider] = "sendpulse"
    scope: ClassVar[str]
    strategy: ClassVar[Strategy]
    # The fields of ``event`` that action templates may use.
    payload_fields: ClassVar[frozenset[str]] = frozenset()
    summary: ClassVar[str] = ""


class Action:
    """Something done with an event: a webhook, a SendPulse call, a file line."""

    key: ClassVar[str]
    Params: ClassVar[type[PluginParams]] = NoParams
    # None for actions that do not call a provider (webhook, append_jsonl, log).
    provider: ClassVar[Provider | None] = None
    scope: ClassVar[str | None] = None
    summary: ClassVar[str] = ""


class PluginAlreadyRegistered(ConnectorError):
    """Two plugins claim the same key: a programming error, caught at import."""


P = TypeVar("P", bound=type[Any])


class Registry(Generic[P]):
    """An explicit, ordered list of plugins keyed by ``key``; duplicates fail at import."""

    def __init__(self, kind: str, plugins: Iterable[P]) -> None:
        self.kind = kind
        self._plugins: dict[str, P] = {}
        for plugin in plugins:
            key = plugin.key
            if key in self._plugins:
                raise PluginAlreadyRegistered(f"{kind} {key!r} is registered twice")
            self._plugins[key] = plugin

    def get(self, key: str) -> P | None:
        return self._plugins.get(key)

    def keys(self) -> list[str]:
        return sorted(self._plugins)

    def __contains__(self, key: object) -> bool:
        return key in self._plugins

    def __iter__(self) -> Iterator[P]:
        return iter(self._plugins.values())

    def __len__(self) -> int:
        return len(self._plugins)

    def unknown_message(self, key: str) -> str:
        return f"unknown {self.kind} type {key!r}; known types: {', '.join(self.keys())}"
