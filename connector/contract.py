"""SendPulse's published OpenAPI files as a checker of API exchanges (requests and answers).

Each file under the contract folder (``tests/contract/openapi`` in a checkout, or
``CONNECTOR_OPENAPI_DIR``) is loaded as it is, with the few errata listed in ``ERRATA``
(places where a file contradicts itself; each one says why), and validated with openapi-core.
An exchange is found its operation by method and path (the file's server path, such as
``/crm/v1``, is part of the path). The contract tests hold every recorded exchange to it;
``connector check --live`` holds one read of each trigger to it.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import yaml
from openapi_core import Config, OpenAPI
from openapi_core.datatypes import RequestParameters
from werkzeug.datastructures import Headers, ImmutableMultiDict

from connector.providers.sendpulse_client import USER_AGENT

SPEC_DIR = Path(
    os.environ.get("CONNECTOR_OPENAPI_DIR")
    or Path(__file__).resolve().parents[1] / "tests" / "contract" / "openapi"
)
HOST = "https://api.sendpulse.com"
METHODS = ("get", "post", "put", "patch", "delete")
# Answers that SendPulse gives to any call and documents once, not per operation: a refused
# token, the rate limit, a server fault. An operation whose file leaves them out is not
# contradicted by them.
GENERAL_STATUSES = frozenset({401, 429, 500, 502, 503, 504})


def _channel_send_messages(spec: dict[str, Any]) -> None:
    # `required` names `message`, but the property and every example are `messages`.
    schema = spec["paths"]["/contacts/send"]["post"]["requestBody"]["content"]["application/json"][
        "schema"
    ]
    schema["required"] = ["messages" if r == "message" else r for r in schema["required"]]


def _bulk_error_schema(spec: dict[str, Any]) -> None:
    # Responses refer to `#/components/schemas/Error`, which the file never defines; the
    # SMTP file's definition (`{message, error_code}`) is the one SendPulse uses.
    spec["components"]["schemas"].setdefault(
        "Error",
        {
            "type": "object",
            "properties": {"message": {"type": "string"}, "error_code": {"type": "integer"}},
        },
    )


def _add_emails_any_of(spec: dict[str, Any]) -> None:
    # The two bodies are `oneOf`, but the single opt-in one is the double opt-in one less an
    # optional field: every body matches both, so `oneOf` refuses every body. `anyOf` is meant.
    body = spec["paths"]["/addressbooks/{id}/emails"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    body["anyOf"] = body.pop("oneOf")


def _add_emails_double_opt_in(spec: dict[str, Any]) -> None:
    # The operation's own 422 examples name `sender_email`, `template_id` and `message_lang`
    # (sender_email required with confirmation); the body schema leaves them out.
    schema = spec["components"]["schemas"]["AddEmailsDoubleOptIn"]
    for name in ("sender_email", "template_id", "message_lang"):
        schema["properties"].setdefault(name, {"type": "string"})


def _deal_sort_enum(spec: dict[str, Any]) -> None:
    # `sortBy` is an object whose `direction` is asc/desc; the file also puts that enum on the
    # object itself (beside the description it was copied from), which no object can match.
    schema = spec["components"]["requestBodies"]["DealFilter"]["content"]["application/json"][
        "schema"
    ]
    schema["properties"]["sortBy"].pop("enum", None)


def _contact_emails_required(spec: dict[str, Any]) -> None:
    # `required` names `email`, but the body's one property is `emails`.
    schema = spec["paths"]["/contacts/{contactId}/emails"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    schema["required"] = ["emails"]


def _messenger_send_text_tag(spec: dict[str, Any]) -> None:
    # `required` names `tag`, which is no property; `message_tag` is, and only goes with
    # message_type MESSAGE_TAG.
    schema = spec["paths"]["/contacts/sendText"]["post"]["requestBody"]["content"][
        "application/json"
    ]["schema"]
    schema["required"] = [r for r in schema["required"] if r != "tag"]


def _enum_lists(node: Any) -> None:
    # Some Message schemas write `enum: {IN: 1, OUT: 2}`; an enum is a list of values.
    if isinstance(node, dict):
        if isinstance(node.get("enum"), dict):
            node["enum"] = list(node["enum"].values())
        for value in node.values():
            _enum_lists(value)
    elif isinstance(node, list):
        for value in node:
            _enum_lists(value)


# file -> (why, patch): self-contradictions only; nothing here makes a wrong shape pass.
ERRATA: dict[str, list[tuple[str, Callable[[dict[str, Any]], None]]]] = {
    name: [("`required: [message]` beside a `messages` property", _channel_send_messages)]
    for name in (
        "sendpulse-instagram-openapi.yml",
        "sendpulse-live-chat-openapi.yml",
        "sendpulse-tiktok-openapi.yml",
        "sendpulse-viber-chatbot-openapi.yml",
    )
}
ERRATA["sendpulse-bulk-email-openapi.yml"] = [
    ("`#/components/schemas/Error` used but not defined", _bulk_error_schema),
    ("add-emails bodies are `oneOf` two schemas that every body matches", _add_emails_any_of),
    (
        "add-emails: fields its own error examples name are not in the body",
        _add_emails_double_opt_in,
    ),
]
ERRATA["sendpulse-crm-openapi.yml"] = [
    ("deals get-list: the asc/desc enum of `direction` also put on `sortBy`", _deal_sort_enum),
    (
        "add contact emails: `required: [email]` beside an `emails` property",
        _contact_emails_required,
    ),
]
ERRATA["sendpulse-facebook-openapi.yml"] = [
    ("sendText: `required` names a `tag` property that does not exist", _messenger_send_text_tag)
]
# Every file: the channel files' Message schemas write `enum: {IN: 1, OUT: 2}`.
EVERY_FILE = [("`enum` written as a map, not a list, read as its values", _enum_lists)]


def close_objects(node: Any) -> None:
    """Make every object schema that lists its properties refuse others.

    The files leave ``additionalProperties`` open, so a row with invented fields, or a body
    with fields the API does not take, would pass. Both sides are held to the fields the
    files name. ``unevaluatedProperties`` (not ``additionalProperties``) keeps ``allOf``
    compositions working.
    """
    if isinstance(node, dict):
        if (
            isinstance(node.get("properties"), dict)
            and node.get("type", "object") == "object"
            and "additionalProperties" not in node
            and "unevaluatedProperties" not in node
        ):
            node["unevaluatedProperties"] = False
        for value in node.values():
            close_objects(value)
    elif isinstance(node, list):
        for value in node:
            close_objects(value)


# Fields the project's API reference documents in answers where the file's schema leaves them
# out; the sandbox keeps them (and triggers read some). Any other undeclared field fails.
REFERENCE_EXTRAS: dict[str, frozenset[str]] = {
    "GET /addressbooks/{id}/emails": frozenset({"phone"}),
    "GET /campaigns": frozenset(
        {
            "message",
            "all_email_qty",
            "tariff_email_qty",
            "paid_email_qty",
            "overdraft_price",
            "overdraft_currency",
        }
    ),
    "GET /campaigns/{id}": frozenset(
        {
            "message",
            "all_email_qty",
            "tariff_email_qty",
            "paid_email_qty",
            "overdraft_price",
            "overdraft_currency",
            "send_date",
            "statistics",
        }
    ),
    "GET /emails/{email}": frozenset({"status", "variables"}),
    "POST /emails": frozenset({"email", "status", "variables"}),
    "GET /emails/{email}/details": frozenset({"list_id", "add_date"}),
    "GET /senders": frozenset({"status"}),
    "GET /addressbooks/{id}/cost": frozenset(
        {"addressesDeltaFromBalance", "addressesDeltaFromTariff", "max_emails_per_task"}
    ),
    "GET /smtp/emails": frozenset({"smtp_answer_code_explain"}),
    "GET /smtp/emails/{id}": frozenset({"smtp_answer_code_explain"}),
    "POST /smtp/emails/info": frozenset({"smtp_answer_code_explain"}),
}
_UNEXPECTED = re.compile(r"Unevaluated properties are not allowed \((.*) (?:was|were) unexpected\)")


def _only_extras(message: str, allowed: frozenset[str]) -> bool:
    match = _UNEXPECTED.search(message)
    if match is None:
        return False
    names = {name.strip().strip("'") for name in match[1].split(",")}
    return names <= allowed


@dataclass(frozen=True)
class Operation:
    """One documented operation: its file, method and full path template."""

    file: str
    method: str
    template: str
    operation_id: str
    statuses: frozenset[str]

    @property
    def key(self) -> str:
        return f"{self.method.upper()} {self.template}"

    def documents(self, status: int) -> bool:
        return str(status) in self.statuses or f"{str(status)[0]}XX" in self.statuses

    @property
    def documents_errors(self) -> bool:
        """Documents how a bad request is refused (beyond the token and plan answers)."""
        return any(s[0] == "4" and s not in ("401", "403") for s in self.statuses)


@dataclass
class WireRequest:
    """A request as openapi-core reads one."""

    host_url: str
    path: str
    method: str
    parameters: RequestParameters
    body: bytes
    content_type: str


@dataclass
class WireResponse:
    """An answer as openapi-core reads one."""

    data: bytes
    status_code: int
    content_type: str
    headers: Headers


@dataclass
class Exchange:
    """One recorded call and its answer (see connector.sandbox.exchanges)."""

    method: str
    path: str
    query: str
    request_type: str | None
    request_body: str | None
    user_agent: str
    status: int
    response_type: str | None
    response_body: str | None
    fault: str | None = None
    truncated: bool = False

    @classmethod
    def from_line(cls, line: str) -> Exchange:
        return cls(**json.loads(line))

    @property
    def ours(self) -> bool:
        """Sent by the connector's own client (not a test speaking an SDK's wire form)."""
        return self.user_agent == USER_AGENT

    def identity(self) -> tuple[Any, ...]:
        return (
            self.method,
            self.path,
            self.query,
            self.request_body,
            self.ours,
            self.status,
            self.response_body,
        )


def read_exchanges(path: Path) -> Iterator[Exchange]:
    if not path.exists():
        return
    with path.open(encoding="utf-8") as lines:
        for line in lines:
            if line.strip():
                yield Exchange.from_line(line)


def _segment_pattern(template: str) -> re.Pattern[str]:
    parts = [
        "[^/]+" if part.startswith("{") and part.endswith("}") else re.escape(part)
        for part in template.split("/")
    ]
    return re.compile("/".join(parts) + "/?")


@dataclass
class Contract:
    """All the files, their operations, and a validator per file."""

    directory: Path = SPEC_DIR
    errata_applied: list[str] = field(default_factory=list)

    @cached_property
    def documents(self) -> dict[str, dict[str, Any]]:
        loaded = {}
        for path in sorted(self.directory.glob("*-openapi.yml")):
            spec = yaml.safe_load(path.read_text(encoding="utf-8"))
            for why, patch in ERRATA.get(path.name, []) + EVERY_FILE:
                patch(spec)
                if (why, patch) not in EVERY_FILE:
                    self.errata_applied.append(f"{path.name}: {why}")
            close_objects(spec.get("paths"))
            close_objects(spec.get("components"))
            loaded[path.name] = spec
        return loaded

    @cached_property
    def operations(self) -> list[tuple[re.Pattern[str], Operation]]:
        found = []
        for name, spec in self.documents.items():
            base = urlsplit(spec["servers"][0]["url"]).path.rstrip("/")
            for template, item in spec.get("paths", {}).items():
                for method in METHODS:
                    operation = item.get(method)
                    if not isinstance(operation, dict):
                        continue
                    full = base + template
                    op = Operation(
                        name,
                        method,
                        full,
                        str(operation.get("operationId") or ""),
                        frozenset(str(s) for s in operation.get("responses", {})),
                    )
                    found.append((_segment_pattern(full), op))
        # Literal segments before parameters: /emails/total before /emails/{email}.
        found.sort(key=lambda pair: (pair[1].template.count("{"), -len(pair[1].template)))
        return found

    def find(self, method: str, path: str) -> Operation | None:
        merged = re.sub(r"/{2,}", "/", path)
        for pattern, op in self.operations:
            if op.method == method.lower() and pattern.fullmatch(merged):
                return op
        return None

    def find_any(self, path: str) -> list[Operation]:
        merged = re.sub(r"/{2,}", "/", path)
        return [op for pattern, op in self.operations if pattern.fullmatch(merged)]

    @cached_property
    def validators(self) -> dict[str, OpenAPI]:
        # The files are not all valid OpenAPI documents (stray keys, unresolved parameters
        # in operations we never call); only the operations we exercise are held to them.
        config = Config(spec_validator_cls=None)
        return {
            name: OpenAPI.from_dict(spec, config=config) for name, spec in self.documents.items()
        }

    def _request(self, exchange: Exchange) -> WireRequest:
        return WireRequest(
            host_url=HOST,
            path=re.sub(r"/{2,}", "/", exchange.path),
            method=exchange.method.lower(),
            parameters=RequestParameters(
                query=ImmutableMultiDict(parse_qsl(exchange.query, keep_blank_values=True)),
                header=Headers({"Authorization": "Bearer token"}),
            ),
            body=(exchange.request_body or "").encode(),
            content_type=exchange.request_type or "application/json",
        )

    def check_request(self, op: Operation, exchange: Exchange) -> list[str]:
        try:
            self.validators[op.file].validate_request(self._request(exchange))
        except Exception as exc:
            return [_explain(exc)]
        return []

    def check_response(self, op: Operation, exchange: Exchange) -> list[str]:
        response = WireResponse(
            data=(exchange.response_body or "").encode(),
            status_code=exchange.status,
            content_type=exchange.response_type or "application/json",
            headers=Headers(),
        )
        try:
            self.validators[op.file].validate_response(self._request(exchange), response)
        except Exception as exc:
            allowed = REFERENCE_EXTRAS.get(op.key, frozenset())
            errors = _schema_errors(exc)
            if allowed and errors and all(_only_extras(e, allowed) for e in errors):
                return []
            return [_explain(exc)]
        return []


def _schema_errors(exc: BaseException) -> list[str]:
    """Every schema error's message under the validator's exception (nested ones too)."""
    found: list[str] = []
    node: BaseException | None = exc
    while node is not None:
        for error in getattr(node, "schema_errors", ()) or ():
            stack = [error]
            while stack:
                item = stack.pop()
                context = list(getattr(item, "context", None) or [])
                if context:
                    stack.extend(context)
                else:
                    found.append(str(getattr(item, "message", item)))
        node = node.__cause__ or node.__context__
    return found


def _explain(exc: BaseException) -> str:
    """The validator's verdict on one line: the schema errors first, short."""
    details: list[str] = []
    node: BaseException | None = exc
    while node is not None and len(details) < 6:
        for error in getattr(node, "schema_errors", ()) or ():
            where = "/".join(str(p) for p in getattr(error, "absolute_path", ()))
            details.append(f"{where or '<root>'}: {str(getattr(error, 'message', error))[:160]}")
        node = node.__cause__ or node.__context__
    head = f"{type(exc).__name__}: {str(exc)[:160]}"
    return head if not details else f"{type(exc).__name__}: " + "; ".join(details[:6])


@cache
def shared_contract() -> Contract:
    """One loaded contract for the session (loading the files takes seconds)."""
    return Contract()
