"""The crm app's models: pipeline configuration and the shared customer data."""

from .account import Account, AccountTier, AccountType, Contact, Industry
from .api_keys import ApiKey, ApiKeyScope
from .automation import AutomationRule, AutomationRun, OnError, RunStatus, TriggerKind
from .base import Priority, Rating, TimeStampedModel
from .consent import Channel, ChannelPreference, ConsentPurpose, ConsentRecord, ConsentSource, LawfulBasis
from .history import LeadStageChange, StageChange
from .insights import AccountChurnRisk, ChurnModel, StageTiming
from .jobs import Job, JobKind, JobStatus
from .lead import LEAD_SEARCH_FIELDS, Lead, LeadSource, LeadStatus, PipelineRecordMixin
from .marketing import (
    Campaign,
    CampaignMember,
    CampaignMemberStatus,
    CampaignStatus,
    CampaignType,
    EmailUnsubscribe,
    ExclusionReason,
    Segment,
    SegmentEntity,
    SegmentKind,
    SendStatus,
)
from .messaging import EmailTemplate, OutgoingEmail, OutgoingEmailStatus
from .notifications import (
    DEFAULT_CHANNELS,
    Notification,
    NotificationChannel,
    NotificationKind,
    NotificationPreference,
    UserProfile,
)
from .outbox import OutboxEvent, OutboxStatus
from .pipeline import Pipeline, Stage
from .privacy import PrivacyRequest, PrivacyRequestKind
from .reports import ReportDisplay, ReportSchedule, ReportSharing, SavedReport
from .rollups import LeadRollup
from .saved_views import SavedView, ViewSharing
from .scoring import COMPLETENESS_FIELDS, ScoreBreakdown, ScoringCriterion, ScoringRule
from .sequences import (
    ConditionOperator,
    EnrollmentEvent,
    EnrollmentStatus,
    Sequence,
    SequenceEnrollment,
    SequenceStep,
    StepKind,
    TaskType,
)
from .tag import LostReason, Tag
from .team import SalesTeam
from .webhooks import DeliveryStatus, WebhookAttempt, WebhookDelivery, WebhookSubscription
from .winning import WinModel, WinModelKind

__all__ = [
    "COMPLETENESS_FIELDS",
    "DEFAULT_CHANNELS",
    "LEAD_SEARCH_FIELDS",
    "Account",
    "AccountChurnRisk",
    "AccountTier",
    "AccountType",
    "ApiKey",
    "ApiKeyScope",
    "AutomationRule",
    "AutomationRun",
    "Campaign",
    "CampaignMember",
    "CampaignMemberStatus",
    "CampaignStatus",
    "CampaignType",
    "Channel",
    "ChannelPreference",
    "ChurnModel",
    "ConditionOperator",
    "ConsentPurpose",
    "ConsentRecord",
    "ConsentSource",
    "Contact",
    "DeliveryStatus",
    "EmailTemplate",
    "EmailUnsubscribe",
    "EnrollmentEvent",
    "EnrollmentStatus",
    "ExclusionReason",
    "Industry",
    "Job",
    "JobKind",
    "JobStatus",
    "LawfulBasis",
    "Lead",
    "LeadRollup",
    "LeadSource",
    "LeadStageChange",
    "LeadStatus",
    "LostReason",
    "Notification",
    "NotificationChannel",
    "NotificationKind",
    "NotificationPreference",
    "OnError",
    "OutboxEvent",
    "OutboxStatus",
    "OutgoingEmail",
    "OutgoingEmailStatus",
    "Pipeline",
    "PipelineRecordMixin",
    "Priority",
    "PrivacyRequest",
    "PrivacyRequestKind",
    "Rating",
    "ReportDisplay",
    "ReportSchedule",
    "ReportSharing",
    "RunStatus",
    "SalesTeam",
    "SavedReport",
    "SavedView",
    "ScoreBreakdown",
    "ScoringCriterion",
    "ScoringRule",
    "Segment",
    "SegmentEntity",
    "SegmentKind",
    "SendStatus",
    "Sequence",
    "SequenceEnrollment",
    "SequenceStep",
    "Stage",
    "StageChange",
    "StageTiming",
    "StepKind",
    "Tag",
    "TaskType",
    "TimeStampedModel",
    "TriggerKind",
    "UserProfile",
    "ViewSharing",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookSubscription",
    "WinModel",
    "WinModelKind",
]
