"""Opportunities: deals with an amount and a close date, moving through a pipeline to won or lost."""

import calendar
import datetime

from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.models import (
    Account,
    Contact,
    Lead,
    LostReason,
    Pipeline,
    PipelineRecordMixin,
    Priority,
    SalesTeam,
    Stage,
    StageChange,
    Tag,
    TimeStampedModel,
)
from crm.models.base import (
    PROBABILITY_VALIDATORS,
    audit_history,
    non_negative_constraint,
    probability_constraint,
)


def company_currency() -> str:
    """The currency the company reports in (``CRM_CURRENCY``): every figure is converted into it."""
    return settings.CRM_CURRENCY


CURRENCY_VALIDATORS = [
    RegexValidator(r"^[A-Z]{3}\Z", "A 3-letter ISO 4217 code in capitals, such as EUR.", code="currency")
]


class OpportunityType(models.TextChoices):
    NEW_BUSINESS = "new_business", "New business"
    RENEWAL = "renewal", "Renewal"
    UPSELL = "upsell", "Upsell"
    CROSS_SELL = "cross_sell", "Cross-sell"
    OTHER = "other", "Other"


class OpportunityStatus(models.TextChoices):
    OPEN = "open", "Open"
    WON = "won", "Won"
    LOST = "lost", "Lost"


class Opportunity(PipelineRecordMixin, TimeStampedModel):
    name = models.CharField(max_length=200)
    account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="opportunities",
        db_index=False,  # sales_opp_account_figures starts with it
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="opportunities"
    )
    pipeline = models.ForeignKey(
        Pipeline,
        on_delete=models.PROTECT,
        blank=True,
        related_name="opportunities",
        help_text="Leave empty for the default pipeline.",
        db_index=False,  # sales_opp_pipeline_stage starts with it
    )
    stage = models.ForeignKey(
        Stage,
        on_delete=models.PROTECT,
        blank=True,
        related_name="opportunities",
        help_text="Leave empty for the pipeline's first stage.",
        db_index=False,  # sales_opp_stage_created starts with it
    )
    amount = models.DecimalField(max_digits=14, decimal_places=2, default=0)
    currency = models.CharField(
        max_length=3,
        default=company_currency,
        blank=True,  # left empty (a form, an import): the company currency, set by clean()
        validators=CURRENCY_VALIDATORS,
        help_text="ISO 4217 code of the amount. Empty: the company currency (CRM_CURRENCY).",
    )
    probability = models.PositiveSmallIntegerField(
        blank=True,
        validators=PROBABILITY_VALIDATORS,
        help_text="0–100. Leave empty to take the stage's probability.",
    )
    close_date = models.DateField(null=True, blank=True, db_index=True)
    opportunity_type = models.CharField(
        max_length=20, choices=OpportunityType.choices, default=OpportunityType.NEW_BUSINESS
    )
    priority = models.CharField(
        max_length=10, choices=Priority.choices, default=Priority.MEDIUM, db_index=True
    )
    # Indexed by sales_opp_status_close_inc, which starts with it.
    status = models.CharField(
        max_length=10, choices=OpportunityStatus.choices, default=OpportunityStatus.OPEN
    )
    closed_at = models.DateTimeField(null=True, blank=True)
    lost_reason = models.ForeignKey(
        LostReason, on_delete=models.PROTECT, null=True, blank=True, related_name="opportunities"
    )
    lost_note = models.TextField(blank=True)
    lead = models.OneToOneField(
        Lead,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="converted_opportunity",
        help_text="The lead this opportunity was converted from.",
    )
    campaign = models.ForeignKey(
        "crm.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="opportunities",
        help_text="The campaign that sourced this deal (a converted lead passes its own on).",
    )
    description = models.TextField(blank=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_opportunities",
        db_index=False,  # sales_opp_owner_created starts with it
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="opportunities")
    # When its newest activity was logged: written by the activity services, as a lead's is, so the
    # automation's "N days without activity" finds quiet deals through sales_opp_quiet_since.
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)
    reached_sequence = models.IntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The sequence of the furthest stage of its pipeline the deal has been in (crm.reached).",
    )

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "opportunity_closed_at": "closed_at",
        "opportunity_won_probability": "probability",
    }

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history(derived_fields=("last_activity_at", "reached_sequence"))

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage", "status"], name="sales_opp_pipeline_stage"),
            # The forecast (open and won deals by close month) reads only this index.
            models.Index(
                fields=["status", "close_date"],
                include=["amount", "probability", "owner", "pipeline", "currency"],
                name="sales_opp_status_close_inc",
            ),
            # A board column's first cards in the list's order (a LIMIT per stage). Its count and amount
            # total, and the dashboard's figures, are read from the index alone: it carries what they
            # sum and filter on (visibility needs owner_id). Also the stage filter.
            models.Index(
                fields=["stage", "-created_at", "-id"],
                include=["amount", "owner", "status", "pipeline", "currency"],
                name="sales_opp_stage_created",
            ),
            # "My opportunities" (the owner filter, a rep's view) newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="sales_opp_owner_created"),
            # The dashboard's last deals won.
            models.Index(fields=["status", "-closed_at", "-id"], name="sales_opp_status_closed"),
            models.Index(fields=["name"], name="sales_opp_name"),
            # "N days without activity": the last activity, or the creation of a deal never touched.
            models.Index(Coalesce("last_activity_at", "created_at"), name="sales_opp_quiet_since"),
            # The funnel's last step for a rep: the won deals from leads, found by lead, with what their
            # value converts from (a rep's dashboard at 1M leads: 100 -> 14 ms with the leads' owner index).
            models.Index(
                fields=["lead"],
                include=["amount", "currency", "close_date"],
                condition=Q(status="won", lead__isnull=False),
                name="sales_opp_won_from_lead",
            ),
            # "My next actions" (the dashboard): an owner's open deals untouched the longest.
            models.Index(
                models.F("owner_id"),
                Coalesce("last_activity_at", "created_at"),
                models.F("id"),
                condition=Q(status="open"),
                name="sales_opp_owner_quiet",
            ),
            # An account's open and won value (its page, the accounts list, the hierarchy of thousands
            # of accounts) read from the index alone: it carries what they sum, convert and filter on.
            models.Index(
                fields=["account"],
                include=["status", "amount", "currency", "close_date", "owner"],
                name="sales_opp_account_figures",
            ),
        ]
        constraints = [
            probability_constraint("sales_opportunity"),
            non_negative_constraint("sales_opportunity", "amount"),
            models.CheckConstraint(
                condition=Q(status=OpportunityStatus.OPEN) | Q(closed_at__isnull=False),
                name="sales_opportunity_closed_has_date",
                violation_error_code="opportunity_closed_at",
                violation_error_message="A won or lost opportunity needs the date it was closed.",
            ),
            models.CheckConstraint(
                condition=~Q(status=OpportunityStatus.WON) | Q(probability=100),
                name="sales_opportunity_won_is_certain",
                violation_error_code="opportunity_won_probability",
                violation_error_message="A won opportunity has a probability of 100.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        if not self.currency:
            self.currency = company_currency()
        self.clean_pipeline_placement()
        if self.contact_id and self.account_id and self.contact.account_id not in (None, self.account_id):
            raise ValidationError(
                {"contact": f"{self.contact} works for {self.contact.account}, not for {self.account}."}
            )

    @property
    def is_closed(self) -> bool:
        return self.status != OpportunityStatus.OPEN

    @property
    def weighted_amount(self):
        return (self.amount or 0) * (self.probability or 0) / 100

    @property
    def days_in_stage(self) -> float | None:
        """Days since it entered its stage (stage history; read with opportunity_annotate_stage_time)."""
        return days_in_stage(self.status, getattr(self, "stage_entered_at", None))

    @property
    def stage_usual_time(self) -> float | None:
        usual = getattr(self, "stage_usual_days", None)
        return round(usual, 1) if usual is not None else None

    @property
    def is_rotting(self) -> bool:
        """Open and in its stage for longer than CRM_ROTTING_FACTOR × the stage's usual time."""
        return is_rotting(self.days_in_stage, getattr(self, "stage_usual_days", None))


def days_in_stage(status: str, entered: datetime.datetime | None) -> float | None:
    """Days an open deal has been in its stage, entered at ``entered`` (None for a closed deal)."""
    if entered is None or status != OpportunityStatus.OPEN:
        return None
    return round((timezone.now() - entered).total_seconds() / 86400, 1)


def is_rotting(days: float | None, usual_days: float | None) -> bool:
    """In its stage for longer than CRM_ROTTING_FACTOR × the stage's usual time."""
    return days is not None and usual_days is not None and days > usual_days * settings.CRM_ROTTING_FACTOR


class OpportunityStageChange(StageChange):
    record = models.ForeignKey(
        Opportunity,
        on_delete=models.CASCADE,
        related_name="stage_changes",
        db_index=False,  # the (record, changed_at) index serves lookups by record
    )

    class Meta(StageChange.Meta):
        verbose_name = "opportunity stage change"
        indexes = [models.Index(fields=["record", "changed_at"], name="sales_oppstage_record_at")]


# --- currencies -----------------------------------------------------------------------------------


class ExchangeRate(TimeStampedModel):
    """What one unit of ``currency`` was worth in the company currency from ``date`` on (until the
    next rate of that currency): a deal is converted at the latest rate on or before its close date."""

    currency = models.CharField(max_length=3, validators=CURRENCY_VALIDATORS)
    date = models.DateField(help_text="The day the rate comes into force.")
    rate = models.DecimalField(
        max_digits=20,
        decimal_places=8,
        help_text="Company-currency units one unit of the currency is worth (EUR→USD 1.08: 1.08).",
    )

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "rate_not_positive": "rate",
        "rate_taken": "date",
    }

    class Meta:
        ordering = ["currency", "-date"]
        constraints = [
            # Also the index of "the latest rate of a currency on or before a date".
            models.UniqueConstraint(
                fields=["currency", "date"],
                name="sales_exchangerate_currency_date",
                violation_error_code="rate_taken",
                violation_error_message="This currency already has a rate on this date.",
            ),
            models.CheckConstraint(
                condition=Q(rate__gt=0),
                name="sales_exchangerate_rate_positive",
                violation_error_code="rate_not_positive",
                violation_error_message="A rate is greater than zero.",
            ),
        ]

    def __str__(self) -> str:
        return f"1 {self.currency} = {self.rate} {company_currency()} from {self.date}"

    def clean(self):
        super().clean()
        if self.currency == company_currency():
            raise ValidationError(
                {"currency": f"{self.currency} is the company currency: its rate is always 1."}
            )


# --- quotas ---------------------------------------------------------------------------------------


class QuotaPeriod(models.TextChoices):
    MONTH = "month", "Month"
    QUARTER = "quarter", "Quarter"
    YEAR = "year", "Year"


def period_bounds(period: str, day: datetime.date) -> tuple[datetime.date, datetime.date]:
    """The first and last day of the month, quarter or year holding ``day`` (9999-12-31 included)."""
    if period == QuotaPeriod.YEAR:
        return datetime.date(day.year, 1, 1), datetime.date(day.year, 12, 31)
    first_month = day.month if period == QuotaPeriod.MONTH else (day.month - 1) // 3 * 3 + 1
    last_month = first_month if period == QuotaPeriod.MONTH else first_month + 2
    last_day = calendar.monthrange(day.year, last_month)[1]
    return datetime.date(day.year, first_month, 1), datetime.date(day.year, last_month, last_day)


class Quota(TimeStampedModel):
    """A target for one user or one team over a month, quarter or year: a won amount (in the company
    currency), a number of deals won, or both."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, null=True, blank=True, related_name="quotas"
    )
    team = models.ForeignKey(
        SalesTeam, on_delete=models.CASCADE, null=True, blank=True, related_name="quotas"
    )
    period = models.CharField(max_length=10, choices=QuotaPeriod.choices, default=QuotaPeriod.QUARTER)
    period_start = models.DateField(help_text="Any day of the period; kept as its first day.")
    # Derived from period and period_start (clean()): attainment sums deals between the two in SQL.
    period_end = models.DateField(editable=False)
    target_amount = models.DecimalField(
        max_digits=14, decimal_places=2, null=True, blank=True, help_text="Won value, company currency."
    )
    target_count = models.PositiveIntegerField(null=True, blank=True, help_text="Deals won.")

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "quota_one_holder": "user",
        "quota_has_target": "target_amount",
        "quota_taken": "period_start",
        "target_amount_negative": "target_amount",
    }

    class Meta:
        ordering = ["-period_start", "period", "id"]
        indexes = [models.Index(fields=["period_start", "period_end"], name="sales_quota_period")]
        constraints = [
            models.CheckConstraint(
                condition=Q(user__isnull=False, team__isnull=True) | Q(user__isnull=True, team__isnull=False),
                name="sales_quota_user_or_team",
                violation_error_code="quota_one_holder",
                violation_error_message="A quota is for one user or one team: give exactly one.",
            ),
            models.CheckConstraint(
                condition=Q(target_amount__isnull=False) | Q(target_count__isnull=False),
                name="sales_quota_has_target",
                violation_error_code="quota_has_target",
                violation_error_message="Give a target amount, a target count or both.",
            ),
            non_negative_constraint("sales_quota", "target_amount"),
            models.UniqueConstraint(
                fields=["user", "period", "period_start"],
                condition=Q(user__isnull=False),
                name="sales_quota_user_period",
                violation_error_code="quota_taken",
                violation_error_message="This user already has a quota for this period.",
            ),
            models.UniqueConstraint(
                fields=["team", "period", "period_start"],
                condition=Q(team__isnull=False),
                name="sales_quota_team_period",
                violation_error_code="quota_taken",
                violation_error_message="This team already has a quota for this period.",
            ),
        ]

    def __str__(self) -> str:
        holder = self.user or self.team
        return f"{holder} · {self.get_period_display()} from {self.period_start}"

    def clean_fields(self, exclude=None):
        # The period is kept by its first day whatever day was given, and its last day beside it.
        if isinstance(self.period_start, datetime.date) and self.period in QuotaPeriod.values:
            self.period_start, self.period_end = period_bounds(self.period, self.period_start)
        super().clean_fields(exclude=exclude)


# Products, price lists, deal lines and quotes live in their own modules (they need Opportunity first).
from sales.models_catalog import PriceList, PriceListItem, Product  # noqa: E402
from sales.models_commissions import (  # noqa: E402
    CommissionAssignment,
    CommissionCategoryRate,
    CommissionLine,
    CommissionLineKind,
    CommissionPlan,
    CommissionStatement,
    CommissionTier,
    StatementStatus,
)
from sales.models_quotes import (  # noqa: E402
    OpportunityLine,
    Quote,
    QuoteCounter,
    QuoteLine,
    QuoteStatus,
)
from sales.models_rollups import OpportunityBoardRollup, OpportunityRollup, WonFromLeadRollup  # noqa: E402
from sales.models_territories import (  # noqa: E402
    AccountTerritory,
    Territory,
    TerritoryRule,
    TerritoryRun,
    TerritoryRunStatus,
)

__all__ = [
    "AccountTerritory",
    "CommissionAssignment",
    "CommissionCategoryRate",
    "CommissionLine",
    "CommissionLineKind",
    "CommissionPlan",
    "CommissionStatement",
    "CommissionTier",
    "ExchangeRate",
    "Opportunity",
    "OpportunityBoardRollup",
    "OpportunityLine",
    "OpportunityRollup",
    "OpportunityStageChange",
    "OpportunityStatus",
    "OpportunityType",
    "PriceList",
    "PriceListItem",
    "Product",
    "Quota",
    "QuotaPeriod",
    "Quote",
    "QuoteCounter",
    "QuoteLine",
    "QuoteStatus",
    "StatementStatus",
    "Territory",
    "TerritoryRule",
    "TerritoryRun",
    "TerritoryRunStatus",
    "WonFromLeadRollup",
]
