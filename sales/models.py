"""Opportunities: deals with an amount and a close date, moving through a pipeline to won or lost."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from crm.models import (
    Account,
    Contact,
    Lead,
    LostReason,
    Pipeline,
    PipelineRecordMixin,
    Priority,
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
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="opportunities"
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

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "opportunity_closed_at": "closed_at",
        "opportunity_won_probability": "probability",
    }

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history()

    class Meta:
        verbose_name_plural = "opportunities"
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage", "status"], name="sales_opp_pipeline_stage"),
            # The forecast (open and won deals by close month) reads only this index.
            models.Index(
                fields=["status", "close_date"],
                include=["amount", "probability", "owner", "pipeline"],
                name="sales_opp_status_close_inc",
            ),
            # A board column's first cards in the list's order (a LIMIT per stage). Its count and amount
            # total, and the dashboard's figures, are read from the index alone: it carries what they
            # sum and filter on (visibility needs owner_id). Also the stage filter.
            models.Index(
                fields=["stage", "-created_at", "-id"],
                include=["amount", "owner", "status", "pipeline"],
                name="sales_opp_stage_created",
            ),
            # "My opportunities" (the owner filter, a rep's view) newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="sales_opp_owner_created"),
            # The dashboard's last deals won.
            models.Index(fields=["status", "-closed_at", "-id"], name="sales_opp_status_closed"),
            models.Index(fields=["name"], name="sales_opp_name"),
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


# Products, price lists, deal lines and quotes live in their own modules (they need Opportunity first).
from sales.models_catalog import PriceList, PriceListItem, Product  # noqa: E402
from sales.models_quotes import (  # noqa: E402
    OpportunityLine,
    Quote,
    QuoteCounter,
    QuoteLine,
    QuoteStatus,
)

__all__ = [
    "Opportunity",
    "OpportunityLine",
    "OpportunityStageChange",
    "OpportunityStatus",
    "OpportunityType",
    "PriceList",
    "PriceListItem",
    "Product",
    "Quote",
    "QuoteCounter",
    "QuoteLine",
    "QuoteStatus",
]
