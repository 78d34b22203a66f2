"""An action's params model is declared once, as the type argument of ``Action[Params]``; the
class picks it up without repeating it, and the registry and the flow-file checks see it."""

from __future__ import annotations

import sys
from typing import ClassVar

import pytest
from pydantic import ValidationError

from actions import ACTIONS
from actions.sendpulse._base import SendPulseAction
from connector.plugins import Action, NoParams, PluginParams


def test_every_registered_action_has_its_modules_params() -> None:
    assert len(ACTIONS) >= 17
    for action in ACTIONS:
        declared = getattr(sys.modules[action.__module__], "Params", None)
        assert declared is not None, action.key
        assert action.Params is declared, action.key
        assert action.Params is not NoParams, action.key


def test_the_picked_up_model_still_checks_a_flow_files_params() -> None:
    webhook = ACTIONS.get("webhook")
    assert webhook is not None
    with pytest.raises(ValidationError):
        webhook.Params.model_validate({"url": "not a url", "no_such_field": 1})


class Params(PluginParams):
    """This module's own model: what an action defined here picks up."""

    size: int


class Picked(Action[Params]):
    key: ClassVar[str] = "test.picked"


class Explicit(Action):
    key: ClassVar[str] = "test.explicit"
    Params = NoParams


def test_a_class_that_names_its_params_keeps_them() -> None:
    assert Picked.Params is Params
    assert Explicit.Params is NoParams
    assert SendPulseAction.Params is NoParams  # generic over its params: it names none
