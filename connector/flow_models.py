"""The flow file's models: connections, flows, their trigger and actions, apps and egress.

Each model checks its own fields; what needs more than one part of the document (a flow's
connection, its plugins' params and scopes) is checked by :func:`connector.config.parse`.
"""

from __future__ import annotations

import ipaddress
import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import (
    AnyHttpUrl,
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    SecretStr,
    field_validator,
    model_validator,
)

from connector.units import Duration, RateLimitField, check_timeout, parse_rate_limit

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
