"""The action registry: an explicit list, so the catalogue can be read off this file."""

from actions.append_jsonl import AppendJsonl
from actions.log import Log
from actions.webhook import Webhook
from connector.plugins import Action, Registry

ACTIONS: Registry[type[Action]] = Registry(
    "action",
    [
        Webhook,
        AppendJsonl,
        Log,
    ],
)
