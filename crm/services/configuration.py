"""Writes of the CRM's configuration: pipelines, stages, tags, lost reasons and scoring rules."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.actors import Actor
from crm.models import (
    LostReason,
    Pipeline,
    ScoringRule,
    Stage,
    Tag,
)

from .records import DEFAULT_PIPELINE, record_assign, record_delete, record_lock, record_save

# --- pipelines, stages and vocabularies -----------------------------------------------------------


@transaction.atomic
def pipeline_save(*, pipeline: Pipeline, user: Actor) -> Pipeline:
    """Save a pipeline, keeping exactly one default pipeline.

    Making a pipeline the default takes the flag from the previous default in the same
    transaction; the first pipeline ever saved becomes the default whatever it says.
    """
    # Lock the current default so two concurrent "make default" saves cannot both win.
    current_default = Pipeline.objects.select_for_update().filter(is_default=True).first()
    if current_default is None or current_default.pk == pipeline.pk:
        pipeline.is_default = True if current_default is None else pipeline.is_default
    pipeline.full_clean()
    if pipeline.is_default and current_default is not None and current_default.pk != pipeline.pk:
        Pipeline.objects.filter(pk=current_default.pk).update(is_default=False)
    pipeline.save()
    return pipeline


@transaction.atomic
def pipeline_create(*, user: Actor, data: Mapping[str, Any]) -> Pipeline:
    pipeline = Pipeline()
    record_assign(instance=pipeline, data=data)
    return pipeline_save(pipeline=pipeline, user=user)


@transaction.atomic
def pipeline_update(*, pipeline: Pipeline, user: Actor, data: Mapping[str, Any]) -> Pipeline:
    pipeline = record_lock(pipeline)
    record_assign(instance=pipeline, data=data)
    return pipeline_save(pipeline=pipeline, user=user)


@transaction.atomic
def pipeline_set_default(*, pipeline: Pipeline, user: Actor) -> Pipeline:
    pipeline.is_default = True
    pipeline.is_active = True
    return pipeline_save(pipeline=pipeline, user=user)


def pipeline_delete_problems(*, pipeline: Pipeline) -> list[str]:
    """Why a pipeline cannot be deleted, beyond the records that still use its stages."""
    if pipeline.is_default and Pipeline.objects.exclude(pk=pipeline.pk).exists():
        return [
            f"“{pipeline}” is the default pipeline: make another pipeline the default before deleting it."
        ]
    return []


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline, user: Actor) -> None:
    problems = pipeline_delete_problems(pipeline=pipeline)
    if problems:
        raise ValidationError(problems[0], code=DEFAULT_PIPELINE)
    record_delete(instance=pipeline, user=user)


@transaction.atomic
def stage_create(*, user: Actor, data: Mapping[str, Any]) -> Stage:
    return record_save(instance=Stage(), data=data)


@transaction.atomic
def stage_update(*, stage: Stage, user: Actor, data: Mapping[str, Any]) -> Stage:
    stage = record_lock(stage)
    pipeline = data.get("pipeline")
    if pipeline is not None and pipeline.pk != stage.pipeline_id:
        raise ValidationError(
            {"pipeline": "A stage cannot move to another pipeline: create it in that pipeline instead."}
        )
    return record_save(instance=stage, data=data)


@transaction.atomic
def tag_create(*, user: Actor, data: Mapping[str, Any]) -> Tag:
    return record_save(instance=Tag(), data=data)


@transaction.atomic
def tag_update(*, tag: Tag, user: Actor, data: Mapping[str, Any]) -> Tag:
    return record_save(instance=record_lock(tag), data=data)


@transaction.atomic
def lost_reason_create(*, user: Actor, data: Mapping[str, Any]) -> LostReason:
    return record_save(instance=LostReason(), data=data)


@transaction.atomic
def lost_reason_update(*, lost_reason: LostReason, user: Actor, data: Mapping[str, Any]) -> LostReason:
    return record_save(instance=record_lock(lost_reason), data=data)


@transaction.atomic
def scoring_rule_create(*, user: Actor, data: Mapping[str, Any]) -> ScoringRule:
    return record_save(instance=ScoringRule(), data=data)


@transaction.atomic
def scoring_rule_update(*, scoring_rule: ScoringRule, user: Actor, data: Mapping[str, Any]) -> ScoringRule:
    return record_save(instance=record_lock(scoring_rule), data=data)
