"""The shapes of triggers and actions, and the registries that list them.

A trigger is a small class with a ``key``, a ``Params`` model checked when the flow file is
loaded, the SendPulse ``scope`` it needs, its change-detection ``strategy`` and the fields of
the payload it emits. An action has the same shape. The engine, not the plugin, stores cursors
and writes events; plugins only talk to the provider through the client they are given.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar, Generic, Literal, Protocol, TypeVar, get_args

from pydantic import BaseModel, ConfigDict

from connector.errors import ConnectorError

Strategy = Literal["watermark", "snapshot", "fingerprint"]
Provider = Literal["sendpulse", "sendloop", "mailium"]
# What a snapshot or fingerprint diff reports for one key.
SnapshotChange = Literal["added", "removed", "changed"]
Item = dict[str, Any]


class ApiClient(Protocol):
    """The part of a provider client that triggers use (see connector.providers)."""

    requests_made: int

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
    ) -> Any: ...

    def iter_offset(
        self, path: str, *, params: Mapping[str, Any] | None = None, limit: int = 100
    ) -> AsyncIterator[Item]: ...


@dataclass(frozen=True)
class WebhookChange:
    """One provider webhook event about one member of a list, as the intake checked it.

    The fields are the webhook's own: the member's email, the list (``book_id``), the
    variables it carries and whether it left every list (``from_all``).
    """

    action: str
    email: str
    book_id: int
    variables: dict[str, Any]
    from_all: bool


@dataclass(frozen=True)
class Gone:
    """What a webhook change makes of an item a flow watched: it left the flow's view."""

    key: str


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
    # The SendPulse API scope the trigger's calls need (None: any connection will do).
    scope: ClassVar[str | None] = None
    strategy: ClassVar[Strategy]
    # The fields of ``event`` that action templates may use.
    payload_fields: ClassVar[frozenset[str]] = frozenset()
    summary: ClassVar[str] = ""
    # The item field that identifies an item (documentation; ``key_of`` reads it).
    item_key: ClassVar[str] = "id"
    # The API calls one poll makes, for the catalogue.
    api_calls: ClassVar[tuple[str, ...]] = ()
    # Snapshot/fingerprint triggers: which kinds of change become events.
    emits: ClassVar[frozenset[SnapshotChange]] = frozenset({"added"})
    # Snapshot/fingerprint triggers that emit no removals: a removed item stays in the
    # snapshot as it was, so one that offset paging missed for a poll comes back as itself.
    keeps_removed: ClassVar[bool] = False
    # Subscriber triggers: the list is read with only its inactive members.
    inactive_only: ClassVar[bool] = False
    # Watermark triggers: positions are timestamps (capped at the poll's start) or ids.
    time_ordered: ClassVar[bool] = False
    # Watermark triggers: how far below the cursor each poll looks again, in position units.
    overlap: ClassVar[float] = 0.0
    # Snapshot/fingerprint triggers: the numeric payload field that orders items, newest
    # highest, so that ``start: all`` emits the newest ``max_first_run_events``. None: the
    # list has no order (no id, no date), and the first N as the API lists them are emitted.
    first_run_order: ClassVar[str | None] = None

    def __init__(self, params: PluginParams, started: datetime | None = None) -> None:
        self.params = params
        # When the poll started, by the engine's clock: "today" for per-day lists.
        self.started = started or datetime.now(UTC)

    def poll(self, client: ApiClient, since: float | None) -> AsyncIterator[Item]:
        """Yield the items to consider; watermark triggers may stop below ``since``."""
        raise NotImplementedError

    async def keyed(
        self, client: ApiClient, since: float | None
    ) -> AsyncIterator[tuple[str, Item]]:
        """``poll``'s items, each with its ``key_of`` (a trigger that has the keys at hand
        while it pages yields them, so that no key is computed twice)."""
        async for item in self.poll(client, since):
            yield self.key_of(item), item

    def key_of(self, item: Item) -> str:
        return str(item[self.item_key])

    def position_of(self, item: Item) -> float:
        """Watermark triggers: the item's id, or its timestamp in epoch seconds."""
        raise NotImplementedError

    def fingerprint_of(self, item: Item) -> str:
        """Snapshot/fingerprint triggers: a hash of the watched fields ("" watches none)."""
        return ""

    def payload_of(self, item: Item) -> dict[str, Any]:
        """The event payload for an item that was found (new, added or changed)."""
        return dict(item)

    def removed_payload(self, key: str) -> dict[str, Any]:
        """The event payload for a key that is gone (only the key is known then)."""
        return {self.item_key: key}

    def changed_payload(self, payload: dict[str, Any], previous: str | None) -> dict[str, Any]:
        """Fingerprint triggers: add what the item was (``previous`` is its old fingerprint)."""
        return payload

    def wants(self, kind: SnapshotChange | Literal["new"], payload: Mapping[str, Any]) -> bool:
        """A filter on the changes found (``to:`` and the like)."""
        return True

    def occurred_at(self, item: Item) -> datetime | None:
        return None

    # Snapshot/fingerprint triggers whose events need a call per change (``enrich``).
    enriches: ClassVar[bool] = False

    async def enrich(
        self, client: ApiClient, kind: SnapshotChange, payload: dict[str, Any]
    ) -> dict[str, Any] | None:
        """Complete one chosen event's payload with a further call (few changes, few calls).

        None drops the event: a further look showed it was no change after all.
        """
        return payload

    # Webhook intake (connector.intake): the provider's webhook actions that change this
    # trigger's list, each a WebhookChange that ``webhook_item`` turns into what the flow
    # sees; and the actions that only make the flow poll now.
    webhook_actions: ClassVar[frozenset[str]] = frozenset()
    webhook_polls: ClassVar[frozenset[str]] = frozenset()

    def webhook_takes(self, change: WebhookChange) -> bool:
        """Whether a webhook change is about what this flow watches (its list)."""
        return False

    def webhook_lookup(self, change: WebhookChange) -> str | None:
        """The API path (GET) that reads the changed item back; None: the change says all.

        The intake reads it before it takes a database connection, once per path a batch
        needs; ``webhook_item`` gets the answer (None for a 404).
        """
        return None

    def webhook_item(self, change: WebhookChange, found: Any) -> Item | Gone | None:
        """What the flow sees after a webhook change: the item as its poll would read it,
        :class:`Gone` when the item left the flow's view, or None to leave the change to
        the next poll (``found`` is the answer to ``webhook_lookup``)."""
        return None


@dataclass(frozen=True)
class StoredEvent:
    """An event as actions see it: where it came from and its payload."""

    id: str
    flow: str
    trigger: str
    item_key: str
    payload: dict[str, Any]
    occurred_at: datetime | None
    created_at: datetime


@dataclass(frozen=True)
class ActionResult:
    """A successful run: a one-line summary for the log, and what the far side answered."""

    summary: str
    status_code: int | None = None
    detail: str | None = None


@dataclass(frozen=True)
class ActionContext:
    """What one run of an action may use: its delivery's identity and ready clients."""

    delivery_id: str
    attempt: int
    flow: str
    action_index: int
    connection_id: str | None
    # The egress-guarded session (webhooks) and the provider clients (SendPulse actions).
    http: Any
    providers: Any
    clock: Callable[[], datetime]
    # ``connector test --deliver``: the receiver is told this is a test, and no row is kept.
    test: bool = False


ParamsT = TypeVar("ParamsT", bound=PluginParams)


class Action(Generic[ParamsT]):
    """Something done with an event: a webhook, a SendPulse call, a file line.

    ``run`` returns an :class:`ActionResult` or raises ``RetriableError`` (try again later,
    honouring ``retry_after``) or ``FatalError`` (stop now). It must be safe to run twice
    for the same delivery: the delivery id is the idempotency key.
    """

    key: ClassVar[str]
    # Declared once, as the type argument of ``Action[...]`` (see ``__init_subclass__``).
    Params: ClassVar[type[PluginParams]] = NoParams
    # None for actions that do not call a provider (webhook, append_jsonl, log).
    provider: ClassVar[Provider | None] = None
    scope: ClassVar[str | None] = None
    summary: ClassVar[str] = ""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """An action's params model is the type argument of its base, ``Action[Params]``: it
        is the model the flow file's params are checked with, and the type ``run`` receives."""
        super().__init_subclass__(**kwargs)
        if "Params" in cls.__dict__:
            return
        for base in cls.__dict__.get("__orig_bases__", ()):
            args = get_args(base)
            if args and isinstance(args[0], type) and issubclass(args[0], PluginParams):
                cls.Params = args[0]

    async def run(self, ctx: ActionContext, event: StoredEvent, params: ParamsT) -> ActionResult:
        """Do this action for one event (``params`` rendered for it, of type ``Params``)."""
        raise NotImplementedError(f"{type(self).__name__} has no run()")


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

    def __getitem__(self, key: str) -> P:
        return self._plugins[key]

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


@dataclass(frozen=True)
class Catalog:
    """The triggers and actions a flow file may name; handed in once, where a run starts."""

    triggers: Registry[type[Trigger]]
    actions: Registry[type[Action[Any]]]
