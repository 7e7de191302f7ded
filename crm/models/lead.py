"""Leads: prospective business, qualified through a pipeline and converted into an opportunity."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .account import Account, Contact
from .base import (
    PROBABILITY_VALIDATORS,
    Priority,
    Rating,
    TimeStampedModel,
    non_negative_constraint,
    probability_constraint,
)
from .pipeline import Pipeline, Stage
from .tag import LostReason, Tag


class LeadSource(models.TextChoices):
    WEBSITE = "website", "Website"
    REFERRAL = "referral", "Referral"
    COLD_CALL = "cold_call", "Cold call"
    EMAIL_CAMPAIGN = "email_campaign", "Email campaign"
    SOCIAL_MEDIA = "social_media", "Social media"
    TRADE_SHOW = "trade_show", "Trade show"
    ADVERTISEMENT = "advertisement", "Advertisement"
    PARTNER = "partner", "Partner"
    OTHER = "other", "Other"


class LeadStatus(models.TextChoices):
    OPEN = "open", "Open"
    CONVERTED = "converted", "Converted"
    LOST = "lost", "Lost"


class PipelineRecordMixin(models.Model):
    """Pipeline placement shared by leads and opportunities: defaults and the stage-in-pipeline rule."""

    class Meta:
        abstract = True

    def save(self, *args, **kwargs):
        # Code that creates a record without a pipeline or stage gets the same defaults as a form.
        if self._state.adding:
            self.apply_pipeline_defaults()
        super().save(*args, **kwargs)

    def apply_pipeline_defaults(self) -> None:
        """Fill pipeline, stage and probability the way a new record expects them.

        No pipeline: the default one. No stage: the pipeline's first open stage (or the stage's own
        pipeline when only a stage is given). No probability: the stage's.
        """
        if self.pipeline_id is None and self.stage_id is not None:
            self.pipeline_id = (
                Stage.objects.filter(pk=self.stage_id).values_list("pipeline_id", flat=True).first()
            )
        if self.pipeline_id is None:
            default = Pipeline.objects.default()
            if default is not None:
                self.pipeline = default
        if self.stage_id is None and self.pipeline_id is not None:
            first = self.pipeline.first_stage()
            if first is not None:
                self.stage = first
        if self.probability is None and self.stage_id is not None:
            self.probability = self.stage.probability

    def clean_pipeline_placement(self) -> None:
        self.apply_pipeline_defaults()
        errors = {}
        if self.pipeline_id is None:
            errors["pipeline"] = "Choose a pipeline: there is no default pipeline to fall back on."
        elif self.stage_id is None:
            errors["stage"] = f"The pipeline “{self.pipeline}” has no stages yet."
        elif self.stage.pipeline_id != self.pipeline_id:
            errors["stage"] = (
                f"The stage “{self.stage.name}” belongs to the pipeline “{self.stage.pipeline}”, "
                f"not to “{self.pipeline}”."
            )
        if errors:
            raise ValidationError(errors)


class Lead(PipelineRecordMixin, TimeStampedModel):
    name = models.CharField(max_length=200, help_text="What the lead is about, e.g. “Acme — 50 seats”.")
    contact_name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(blank=True)
    phone = models.CharField(max_length=40, blank=True)
    company_name = models.CharField(max_length=200, blank=True)
    job_title = models.CharField(max_length=120, blank=True)
    pipeline = models.ForeignKey(
        Pipeline,
        on_delete=models.PROTECT,
        blank=True,
        related_name="leads",
        help_text="Leave empty for the default pipeline.",
    )
    stage = models.ForeignKey(
        Stage,
        on_delete=models.PROTECT,
        blank=True,
        related_name="leads",
        help_text="Leave empty for the pipeline's first stage.",
    )
    priority = models.CharField(
        max_length=10, choices=Priority.choices, default=Priority.MEDIUM, db_index=True
    )
    rating = models.CharField(max_length=10, choices=Rating.choices, blank=True, db_index=True)
    source = models.CharField(max_length=20, choices=LeadSource.choices, blank=True, db_index=True)
    expected_revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    probability = models.PositiveSmallIntegerField(
        blank=True,
        validators=PROBABILITY_VALIDATORS,
        help_text="0–100. Leave empty to take the stage's probability.",
    )
    description = models.TextField(blank=True)
    status = models.CharField(
        max_length=10, choices=LeadStatus.choices, default=LeadStatus.OPEN, db_index=True
    )
    lost_reason = models.ForeignKey(
        LostReason, on_delete=models.PROTECT, null=True, blank=True, related_name="leads"
    )
    lost_note = models.TextField(blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    converted_account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="converted_leads"
    )
    converted_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="converted_leads"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_leads",
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="leads")

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "lead_converted_at": "converted_at",
    }

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage", "status"], name="crm_lead_pipeline_stage"),
            models.Index(fields=["status", "-created_at"], name="crm_lead_status_created"),
            models.Index(Lower("email"), name="crm_lead_email_lower"),
            models.Index(fields=["name"], name="crm_lead_name"),
        ]
        constraints = [
            probability_constraint("crm_lead"),
            non_negative_constraint("crm_lead", "expected_revenue"),
            models.CheckConstraint(
                condition=~Q(status=LeadStatus.CONVERTED) | Q(converted_at__isnull=False),
                name="crm_lead_converted_has_date",
                violation_error_code="lead_converted_at",
                violation_error_message="A converted lead needs the date it was converted.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def clean(self):
        super().clean()
        self.clean_pipeline_placement()

    @property
    def is_closed(self) -> bool:
        return self.status != LeadStatus.OPEN
