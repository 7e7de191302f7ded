"""Pipelines and their ordered stages: the configuration every lead and opportunity moves through."""

from django.core.exceptions import ValidationError
from django.core.validators import RegexValidator
from django.db import models, router
from django.db.models import Q
from django.db.models.functions import Lower

from .base import PROBABILITY_VALIDATORS, TimeStampedModel, probability_constraint

color_validator = RegexValidator(r"^#[0-9a-fA-F]{6}$", "Enter a colour as #RRGGBB, for example #1f77b4.")


def first_open_stage(stages):
    """The first open stage of ``stages`` (ordered by sequence, id), or the first of all when none is open.

    Takes any iterable of stage-like objects, so the import engine applies the same rule to stages it
    holds in memory.
    """
    stages = list(stages)
    return next((s for s in stages if not s.is_won and not s.is_lost), stages[0] if stages else None)


class PipelineQuerySet(models.QuerySet):
    def default(self) -> "Pipeline | None":
        return self.filter(is_default=True).first()


def default_pipeline() -> "Pipeline | None":
    """``Pipeline.objects.default()`` by a statement compiled once per database and thread
    (crm.prepared): every new lead or deal and every board without a pipeline reads it."""
    from crm.prepared import prepared

    db = router.db_for_read(Pipeline)
    query = prepared(
        ("default-pipeline", db),
        lambda _key: (
            Pipeline.objects.using(db).filter(is_default=True).order_by(*Pipeline._meta.ordering)[:1]
        ),
        keyless=True,
    )
    if query is None:
        return Pipeline.objects.default()
    found = query.instances(None)
    return found[0] if found else None


def pipeline_stages(pipeline_id: int) -> list["Stage"]:
    """The stages of pipeline ``pipeline_id`` in their order (sequence, id), by a statement compiled
    once per database and thread (crm.prepared): a board's columns, a new record's first stage."""
    from crm.prepared import prepared

    db = router.db_for_read(Stage)
    query = prepared(
        ("pipeline-stages", db),
        lambda key: Stage.objects.using(db).filter(pipeline_id=key).order_by("sequence", "id"),
    )
    if query is None:
        return list(Stage.objects.filter(pipeline_id=pipeline_id).order_by("sequence", "id"))
    return query.instances(pipeline_id)


class Pipeline(TimeStampedModel):
    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    is_default = models.BooleanField(
        default=False, help_text="New leads and opportunities go into the default pipeline."
    )
    is_active = models.BooleanField(default=True)
    sequence = models.PositiveIntegerField(default=0, db_index=True)
    lost_reason_required = models.BooleanField(
        default=False,
        help_text="Leads and opportunities of this pipeline can only be marked lost with a lost reason.",
    )
    reach_stale = models.BooleanField(
        default=False,
        editable=False,
        help_text="The stages' order changed since the records' furthest stages were counted (crm.reached).",
    )

    objects = PipelineQuerySet.as_manager()

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "pipeline_name_taken": "name",
        "pipeline_default_taken": "is_default",
    }

    class Meta:
        ordering = ["sequence", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["is_default"],
                condition=Q(is_default=True),
                name="crm_pipeline_one_default",
                violation_error_code="pipeline_default_taken",
                violation_error_message="Another pipeline is already the default.",
            ),
            models.UniqueConstraint(
                Lower("name"),
                name="crm_pipeline_name_ci_unique",
                violation_error_code="pipeline_name_taken",
                violation_error_message="A pipeline with this name already exists.",
            ),
            models.CheckConstraint(
                condition=Q(is_default=False) | Q(is_active=True),
                name="crm_pipeline_default_is_active",
                violation_error_code="pipeline_default_inactive",
                violation_error_message="The default pipeline must be active.",
            ),
        ]

    def __str__(self) -> str:
        return self.name

    def validate_constraints(self, exclude=None):
        # Making a pipeline the default moves the flag from the old one (pipeline_save), so the
        # one-default constraint is the database's last line, not a form error.
        super().validate_constraints(exclude={*(exclude or ()), "is_default"})

    def clean(self):
        super().clean()
        if self.is_default and not self.is_active:
            raise ValidationError({"is_active": "The default pipeline must be active."})
        if self.pk and not self.is_default:
            was_default = Pipeline.objects.filter(pk=self.pk, is_default=True).exists()
            if was_default:
                raise ValidationError(
                    {
                        "is_default": "There must always be a default pipeline: make another "
                        "pipeline the default instead of unsetting this one."
                    }
                )

    def first_stage(self) -> "Stage | None":
        """The stage new records start in: the first open stage, or the first of all."""
        return first_open_stage(self.stages.order_by("sequence", "id"))

    @property
    def won_stage(self) -> "Stage | None":
        return self.stages.filter(is_won=True).first()

    @property
    def lost_stage(self) -> "Stage | None":
        return self.stages.filter(is_lost=True).first()


class Stage(TimeStampedModel):
    pipeline = models.ForeignKey(Pipeline, on_delete=models.CASCADE, related_name="stages")
    name = models.CharField(max_length=120)
    sequence = models.PositiveIntegerField(default=0)
    probability = models.PositiveSmallIntegerField(default=0, validators=PROBABILITY_VALIDATORS)
    color = models.CharField(max_length=7, default="#6c757d", validators=[color_validator])
    is_won = models.BooleanField(default=False, help_text="Records in this stage are won.")
    is_lost = models.BooleanField(default=False, help_text="Records in this stage are lost.")
    rotting_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        help_text="A deal in this stage with no activity for this many days is rotting (its owner is told). "
        "Empty: never.",
    )

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "stage_won_and_lost": "is_lost",
        "stage_name_taken": "name",
        "stage_won_taken": "is_won",
        "stage_lost_taken": "is_lost",
    }

    class Meta:
        ordering = ["pipeline", "sequence", "id"]
        indexes = [models.Index(fields=["pipeline", "sequence"], name="crm_stage_pipeline_seq")]
        constraints = [
            probability_constraint("crm_stage"),
            models.CheckConstraint(
                condition=~(Q(is_won=True) & Q(is_lost=True)),
                name="crm_stage_not_won_and_lost",
                violation_error_code="stage_won_and_lost",
                violation_error_message="A stage cannot be both won and lost.",
            ),
            models.UniqueConstraint(
                "pipeline",
                Lower("name"),
                name="crm_stage_name_unique_in_pipeline",
                violation_error_code="stage_name_taken",
                violation_error_message="This pipeline already has a stage with this name.",
            ),
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=Q(is_won=True),
                name="crm_stage_one_won_per_pipeline",
                violation_error_code="stage_won_taken",
                violation_error_message="This pipeline already has a won stage.",
            ),
            models.UniqueConstraint(
                fields=["pipeline"],
                condition=Q(is_lost=True),
                name="crm_stage_one_lost_per_pipeline",
                violation_error_code="stage_lost_taken",
                violation_error_message="This pipeline already has a lost stage.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.pipeline.name} › {self.name}" if self.pipeline_id else self.name

    @property
    def is_closed(self) -> bool:
        return self.is_won or self.is_lost
