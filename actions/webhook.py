"""``webhook``: POST the event as JSON, signed per the Standard Webhooks spec."""

from __future__ import annotations

from datetime import timedelta
from typing import ClassVar

from pydantic import AnyHttpUrl, Field, SecretStr, field_validator

from connector.plugins import Action, PluginParams
from connector.units import Duration


class Params(PluginParams):
    url: AnyHttpUrl
    # Several secrets are accepted while one is being rotated; the first signs.
    secret: SecretStr | list[SecretStr]
    timeout: Duration = timedelta(seconds=15)
    headers: dict[str, str] = Field(default_factory=dict)

    @field_validator("secret")
    @classmethod
    def _whsec(cls, value: SecretStr | list[SecretStr]) -> SecretStr | list[SecretStr]:
        secrets = value if isinstance(value, list) else [value]
        if not secrets:
            raise ValueError("at least one secret is needed")
        for secret in secrets:
            if not secret.get_secret_value().startswith("whsec_"):
                raise ValueError(
                    "a webhook secret starts with 'whsec_' followed by base64 "
                    "(make one with: connector secret webhook)"
                )
        return value


class Webhook(Action):
    """POST the event to a URL, signed, with the delivery id as ``webhook-id``."""

    key: ClassVar[str] = "webhook"
    Params = Params
    summary = "POST the event as signed JSON"
