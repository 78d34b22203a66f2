"""The action registry: an explicit list, so the catalogue can be read off this file."""

from typing import Any

from actions.append_jsonl import AppendJsonl
from actions.log import Log
from actions.sendpulse.add_phone_to_list import AddPhoneToList
from actions.sendpulse.add_subscriber import AddSubscriber
from actions.sendpulse.add_to_blacklist import AddToBlacklist
from actions.sendpulse.create_campaign import CreateCampaign
from actions.sendpulse.create_crm_contact import CreateCrmContact
from actions.sendpulse.create_crm_deal import CreateCrmDeal
from actions.sendpulse.fire_automation_event import FireAutomationEvent
from actions.sendpulse.remove_subscriber import RemoveSubscriber
from actions.sendpulse.run_chatbot_flow import RunChatbotFlow
from actions.sendpulse.send_chatbot_message import SendChatbotMessage
from actions.sendpulse.send_email import SendEmail
from actions.sendpulse.send_sms import SendSms
from actions.sendpulse.unsubscribe_subscriber import UnsubscribeSubscriber
from actions.sendpulse.update_subscriber_variables import UpdateSubscriberVariables
from actions.webhook import Webhook
from connector.plugins import Action, Registry

ACTIONS: Registry[type[Action[Any]]] = Registry(
    "action",
    [
        Webhook,
        AppendJsonl,
        Log,
        AddSubscriber,
        UpdateSubscriberVariables,
        RemoveSubscriber,
        UnsubscribeSubscriber,
        AddToBlacklist,
        SendEmail,
        CreateCampaign,
        SendSms,
        AddPhoneToList,
        CreateCrmContact,
        CreateCrmDeal,
        SendChatbotMessage,
        RunChatbotFlow,
        FireAutomationEvent,
    ],
)
