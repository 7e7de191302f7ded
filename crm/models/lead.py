"""Leads: prospective business, qualified through a pipeline and converted into an opportunity."""

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q
from django.db.models.functions import Coalesce, Lower

from .account import Account, Contact
from .base import (
    PROBABILITY_VALIDATORS,
    Priority,
    Rating,
    TimeStampedModel,
    audit_history,
    email_domain_expression,
    non_negative_constraint,
    phone_digits_expression,
    probability_constraint,
)
from .pipeline import Pipeline, Stage, default_pipeline, first_open_stage, pipeline_stages
from .tag import LostReason, Tag

# What a search of the leads matches (the API's ?search=, the admin changelist's, the global search's). On
# PostgreSQL the database also keeps them in one column, the search text (crm.search_indexes), which the
# index of their owners carries so that a rep's search can be counted from it alone (crm_lead_owner_search).
LEAD_SEARCH_FIELDS = ("name", "contact_name", "email", "company_name", "phone")


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


class DatabasePipelineSource:
    """Pipelines and stages for ``pipeline_defaults``, read from the database as needed.

    Objects the record already holds (a stage picked in a form) are reused, and what is fetched is
    handed back to the record, so a save costs the same queries as before the rule was shared.
    """

    def __init__(self, record: models.Model | None = None):
        self.objects: dict[tuple[type, int], models.Model] = {}
        if record is not None:
            for name in ("pipeline", "stage"):
                field = record._meta.get_field(name)
                if field.is_cached(record) and (obj := field.get_cached_value(record)) is not None:
                    self.objects[type(obj), obj.pk] = obj

    def _remember(self, obj):
        if obj is not None:
            self.objects[type(obj), obj.pk] = obj
        return obj

    def stage(self, stage_id: int):
        if (Stage, stage_id) not in self.objects:
            self._remember(Stage.objects.filter(pk=stage_id).first())
        return self.objects.get((Stage, stage_id))

    def default_pipeline(self):
        return self._remember(default_pipeline())

    def first_stage(self, pipeline_id: int):
        return self._remember(first_open_stage(pipeline_stages(pipeline_id)))


def pipeline_defaults(
    *, pipeline_id, stage_id, probability, source
) -> tuple[int | None, int | None, int | None]:
    """Fill pipeline, stage and probability the way a new lead or opportunity expects them.

    No pipeline: the stage's own pipeline when only a stage is given, else the default one. No stage:
    the pipeline's first open stage. No probability: the stage's. ``source`` answers ``stage(id)``,
    ``default_pipeline()`` and ``first_stage(pipeline_id)`` with objects that have ``id``,
    ``pipeline_id`` and ``probability``; the model passes the database, the import engine a cache.
    """
    if pipeline_id is None and stage_id is not None:
        stage = source.stage(stage_id)
        pipeline_id = stage.pipeline_id if stage is not None else None
    if pipeline_id is None:
        default = source.default_pipeline()
        if default is not None:
            pipeline_id = default.id
    if stage_id is None and pipeline_id is not None:
        first = source.first_stage(pipeline_id)
        if first is not None:
            stage_id = first.id
    if probability is None and stage_id is not None:
        stage = source.stage(stage_id)
        if stage is not None:
            probability = stage.probability
    return pipeline_id, stage_id, probability


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
        """Fill pipeline, stage and probability the way a new record expects them (``pipeline_defaults``)."""
        source = DatabasePipelineSource(self)
        self.pipeline_id, self.stage_id, self.probability = pipeline_defaults(
            pipeline_id=self.pipeline_id,
            stage_id=self.stage_id,
            probability=self.probability,
            source=source,
        )
        # Keep the fetched objects on the record: clean() reads them next.
        if (pipeline := source.objects.get((Pipeline, self.pipeline_id))) is not None:
            self.pipeline = pipeline
        if (stage := source.objects.get((Stage, self.stage_id))) is not None:
            self.stage = stage

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
        db_index=False,  # crm_lead_pipeline_stage starts with it
    )
    stage = models.ForeignKey(
        Stage,
        on_delete=models.PROTECT,
        blank=True,
        related_name="leads",
        help_text="Leave empty for the pipeline's first stage.",
        db_index=False,  # crm_lead_stage_created starts with it
    )
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    rating = models.CharField(max_length=10, choices=Rating.choices, blank=True)
    source = models.CharField(max_length=20, choices=LeadSource.choices, blank=True)
    campaign = models.ForeignKey(
        "crm.Campaign",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="leads",
        help_text="The campaign that brought this lead in.",
    )
    expected_revenue = models.DecimalField(max_digits=14, decimal_places=2, null=True, blank=True)
    probability = models.PositiveSmallIntegerField(
        blank=True,
        validators=PROBABILITY_VALIDATORS,
        help_text="0–100. Leave empty to take the stage's probability.",
    )
    description = models.TextField(blank=True)
    # Indexed by crm_lead_status_created, which starts with it.
    status = models.CharField(max_length=10, choices=LeadStatus.choices, default=LeadStatus.OPEN)
    # These three are empty on every open lead: their indexes (below) leave those rows out, so a
    # bulk import of open leads does not write three index entries a row that no query reads.
    lost_reason = models.ForeignKey(
        LostReason, on_delete=models.PROTECT, null=True, blank=True, related_name="leads", db_index=False
    )
    lost_note = models.TextField(blank=True)
    converted_at = models.DateTimeField(null=True, blank=True)
    converted_account = models.ForeignKey(
        Account,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="converted_leads",
        db_index=False,
    )
    converted_contact = models.ForeignKey(
        Contact,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="converted_leads",
        db_index=False,
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_leads",
        db_index=False,  # crm_lead_owner_created starts with it
    )
    tags = models.ManyToManyField(Tag, blank=True, related_name="leads")
    score = models.PositiveSmallIntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="0–100 from the scoring rules; open leads only.",
    )
    # Why the lead has its score, shared with the leads that have it for the same reasons; null when
    # no rule gave points. Nullable so bulk writers that name only their own columns (the seeder) need
    # not know it. Not indexed: breakdowns are never deleted and no query looks leads up by one.
    score_breakdown = models.ForeignKey(
        "crm.ScoreBreakdown",
        null=True,
        blank=True,
        editable=False,
        on_delete=models.PROTECT,
        related_name="+",
        db_index=False,
    )

    # When the lead's newest activity was logged (its latest created_at; null without one): what the
    # "recent activity" scoring rule reads. The activity services keep it current with an UPDATE of this
    # column alone (activities.services.lead_last_activity_refresh), so crm needs no query of theirs.
    last_activity_at = models.DateTimeField(null=True, blank=True, editable=False)
    reached_sequence = models.IntegerField(
        null=True,
        blank=True,
        editable=False,
        help_text="The sequence of the furthest stage of its pipeline the lead has been in (crm.reached).",
    )

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "lead_converted_at": "converted_at",
    }

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history(
        derived_fields=("score", "score_breakdown", "last_activity_at", "reached_sequence")
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["pipeline", "stage", "status"], name="crm_lead_pipeline_stage"),
            models.Index(fields=["status", "-created_at"], name="crm_lead_status_created"),
            # A board column's first cards in the list's order (a LIMIT per stage). Its count and revenue
            # total, and the dashboard's lead figures, are read from the index alone: it carries what
            # they sum and filter on (visibility needs owner_id). Also the stage filter.
            models.Index(
                fields=["stage", "-created_at", "-id"],
                include=["expected_revenue", "owner", "status", "pipeline"],
                name="crm_lead_stage_created",
            ),
            # "My leads" (the owner filter, a rep's view) newest first.
            models.Index(fields=["owner", "-created_at", "-id"], name="crm_lead_owner_created"),
            # A reader's leads by the owner rule in one condition (crm.selectors.record_visible_keyed),
            # carrying the search text, is crm_lead_owner_search: made on PostgreSQL by crm 0046, since
            # the search text is a column the database keeps and the models do not name
            # (crm.search_indexes.SEARCH_TEXT_COLUMNS).
            # Few distinct values over a million rows: with the id after them, a changelist sorted by
            # one of these columns (either way: crm.admin.scale keeps the id in the same direction)
            # reads its page from the index instead of sorting every row that shares a value.
            models.Index(fields=["score", "id"], name="crm_lead_score_id"),
            models.Index(fields=["priority", "id"], name="crm_lead_priority_id"),
            models.Index(fields=["rating", "id"], name="crm_lead_rating_id"),
            models.Index(fields=["source", "id"], name="crm_lead_source_id"),
            # A segment's live count by source and status (the most common pair a marketer sets)
            # counts from this index alone instead of scanning every lead: 0.77-0.91 s -> 0.10 s over
            # 1,000,000 leads under load (benchmarks/marketing.py). With the owner in it, a rep's count
            # (the visibility rule is a condition on the owner) is read from the index too: 186 ms ->
            # 25 ms p50 on a quiet machine, where it had read the heap of each of the pair's leads.
            models.Index(fields=["source", "status", "owner"], name="crm_lead_source_status_owner"),
            models.Index(Lower("email"), name="crm_lead_email_lower"),
            models.Index(email_domain_expression(), name="crm_lead_email_domain"),
            models.Index(phone_digits_expression("phone"), name="crm_lead_phone_digits"),
            # Lookups by these keys (a filter, the delete of a reason, account or contact) name a
            # value, which the planner knows is not null: the partial indexes serve them.
            models.Index(
                fields=["lost_reason"], condition=Q(lost_reason__isnull=False), name="crm_lead_lost_reason"
            ),
            models.Index(
                fields=["converted_account"],
                condition=Q(converted_account__isnull=False),
                name="crm_lead_converted_account",
            ),
            models.Index(
                fields=["converted_contact"],
                condition=Q(converted_contact__isnull=False),
                name="crm_lead_converted_contact",
            ),
            models.Index(fields=["name"], name="crm_lead_name"),
            # "N days without activity" (automation rules): the time scan reads the leads whose last
            # activity, or creation when they have none, falls in a window of this expression.
            models.Index(Coalesce("last_activity_at", "created_at"), name="crm_lead_quiet_since"),
            # "My next actions" (the dashboard): an owner's open leads untouched the longest. Without
            # it a user owning none walked the whole quiet-since index (9 s at 5M leads).
            models.Index(
                models.F("owner_id"),
                Coalesce("last_activity_at", "created_at"),
                models.F("id"),
                condition=Q(status="open"),
                name="crm_lead_owner_quiet",
            ),
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
