"""The crm app's models: pipeline configuration and the shared customer data."""

from .account import Account, AccountType, Contact, Industry
from .base import Priority, Rating, TimeStampedModel
from .history import LeadStageChange, StageChange
from .lead import Lead, LeadSource, LeadStatus, PipelineRecordMixin
from .pipeline import Pipeline, Stage
from .scoring import COMPLETENESS_FIELDS, ScoreBreakdown, ScoringCriterion, ScoringRule
from .tag import LostReason, Tag
from .winning import WinModel, WinModelKind

__all__ = [
    "COMPLETENESS_FIELDS",
    "Account",
    "AccountType",
    "Contact",
    "Industry",
    "Lead",
    "LeadSource",
    "LeadStageChange",
    "LeadStatus",
    "LostReason",
    "Pipeline",
    "PipelineRecordMixin",
    "Priority",
    "Rating",
    "ScoreBreakdown",
    "ScoringCriterion",
    "ScoringRule",
    "Stage",
    "StageChange",
    "Tag",
    "TimeStampedModel",
    "WinModel",
    "WinModelKind",
]
