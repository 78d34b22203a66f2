"""The trigger registry: an explicit list, so the catalogue can be read off this file."""

from connector.plugins import Registry, Trigger
from triggers.sendpulse.campaign_created import CampaignCreated
from triggers.sendpulse.campaign_status_changed import CampaignStatusChanged
from triggers.sendpulse.chatbot_contact_subscribed import ChatbotContactSubscribed
from triggers.sendpulse.chatbot_message_received import ChatbotMessageReceived
from triggers.sendpulse.crm_contact_created import CrmContactCreated
from triggers.sendpulse.crm_contact_updated import CrmContactUpdated
from triggers.sendpulse.crm_deal_created import CrmDealCreated
from triggers.sendpulse.crm_deal_stage_changed import CrmDealStageChanged
from triggers.sendpulse.mailing_list_created import MailingListCreated
from triggers.sendpulse.push_subscriber_added import PushSubscriberAdded
from triggers.sendpulse.sms_campaign_created import SmsCampaignCreated
from triggers.sendpulse.smtp_email_bounced import SmtpEmailBounced
from triggers.sendpulse.smtp_email_sent import SmtpEmailSent
from triggers.sendpulse.smtp_unsubscribed import SmtpUnsubscribed
from triggers.sendpulse.subscriber_added import SubscriberAdded
from triggers.sendpulse.subscriber_removed import SubscriberRemoved
from triggers.sendpulse.subscriber_status_changed import SubscriberStatusChanged
from triggers.sendpulse.subscriber_unsubscribed import SubscriberUnsubscribed
from triggers.sendpulse.subscriber_variables_changed import SubscriberVariablesChanged

TRIGGERS: Registry[type[Trigger]] = Registry(
    "trigger",
    [
        SubscriberAdded,
        SubscriberRemoved,
        SubscriberUnsubscribed,
        SubscriberStatusChanged,
        SubscriberVariablesChanged,
        MailingListCreated,
        CampaignCreated,
        CampaignStatusChanged,
        SmtpEmailSent,
        SmtpEmailBounced,
        SmtpUnsubscribed,
        CrmContactCreated,
        CrmContactUpdated,
        CrmDealCreated,
        CrmDealStageChanged,
        ChatbotMessageReceived,
        ChatbotContactSubscribed,
        SmsCampaignCreated,
        PushSubscriberAdded,
    ],
)
