"""What leads and opportunities share as records in a pipeline: stage moves and their history, closing as
lost, reopening.
"""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import ValidationError

from crm import rules
from crm.actors import Actor
from crm.events import publishing as events
from crm.models import (
    Lead,
    LostReason,
    Stage,
)
from crm.scoring import lead_score_assign
from crm.win_probability import (
    win_counts_record_change,
    win_snapshots_of,
)

from .records import CLOSED, M, acting_user, record_save


def stage_change_record(*, record, from_stage: Stage | None, user: Actor) -> None:
    """Add a line to ``record``'s stage history unless it is still in ``from_stage``.

    ``from_stage`` None means the record was just created: the line says which stage it started in,
    so the time spent in that first stage is known too.
    """
    if from_stage is not None and from_stage.pk == record.stage_id:
        return
    record.stage_changes.create(
        from_stage=from_stage,
        from_stage_name=from_stage.name if from_stage is not None else "",
        to_stage=record.stage,
        to_stage_name=record.stage.name,
        changed_by=acting_user(user),
    )


def pipeline_record_save(*, instance: M, data: Mapping[str, Any] | None = None, user: Actor) -> M:
    """``record_save`` for a lead or an opportunity, recording a change of stage in its history
    (and keeping a lead's score and the pipeline's win-probability model current).

    Every service that writes a lead or an opportunity saves through here, so no entry point can move
    a record without the history knowing (the import engine writes its history in bulk itself).
    Closing a record counts it in its pipeline's win-probability model, reopening it takes it out,
    and editing a closed record moves its counts (``win_counts_record_change``).
    """
    counted = [] if instance._state.adding else win_snapshots_of(instance)
    before = events.record_snapshot(instance, data)
    from_stage = None
    if not instance._state.adding:
        field = instance._meta.get_field("stage")
        if field.is_cached(instance):
            from_stage = field.get_cached_value(instance)
        else:
            from_stage = Stage.objects.filter(pk=instance.stage_id).first()
    # A lead's score is computed from the fields saved: written by the same save (an UPDATE after it
    # would write the whole row and every index of the leads once more).
    derive = (lambda lead: lead_score_assign(lead=lead)) if isinstance(instance, Lead) else None
    instance = record_save(instance=instance, data=data, publish=False, derive=derive)
    stage_change_record(record=instance, from_stage=from_stage, user=user)
    win_counts_record_change(instance, counted)
    events.record_published(instance, before=before, user=user)
    return instance


def record_ensure_open(record) -> None:
    """A converted, lost or won record stays where it is until it is reopened (rules.record_move_problem)."""
    problem = rules.record_move_problem(
        noun=record._meta.verbose_name, status=record.status, status_label=record.get_status_display()
    )
    if problem is not None:
        raise ValidationError(problem, code=CLOSED)


def record_ensure_stage_in_pipeline(record, stage: Stage) -> None:
    if stage.pipeline_id != record.pipeline_id:
        raise ValidationError(
            {
                "stage": f"The stage “{stage.name}” belongs to the pipeline “{stage.pipeline}”, not to "
                f"this {record._meta.verbose_name}'s pipeline “{record.pipeline}”."
            }
        )


def lost_reason_ensure_active(lost_reason: LostReason | None) -> None:
    if lost_reason is not None and not lost_reason.is_active:
        problem = rules.lost_reason_problem(
            reason=str(lost_reason), reason_active=False, required=False, pipeline="", noun=""
        )
        raise ValidationError({"lost_reason": problem})


def lost_reason_ensure_given(record, lost_reason: LostReason | None) -> None:
    """A pipeline that requires a lost reason refuses to lose a record without one, whatever the route."""
    if lost_reason is None:
        problem = rules.lost_reason_problem(
            reason=None,
            reason_active=True,
            required=record.pipeline.lost_reason_required,
            pipeline=str(record.pipeline),
            noun=record._meta.verbose_name,
        )
        if problem is not None:
            raise ValidationError({"lost_reason": problem})


def record_lost_data(record, *, lost_reason: LostReason | None, lost_note: str) -> dict[str, Any]:
    """Check that an open lead or opportunity may be lost, and the fields that lose it: status lost,
    probability 0, the reason and note, and its pipeline's lost stage when the pipeline has one."""
    record_ensure_open(record)
    lost_reason_ensure_active(lost_reason)
    lost_reason_ensure_given(record, lost_reason)
    return {
        **rules.lost_values(lost_stage=record.pipeline.lost_stage),
        "lost_reason": lost_reason,
        "lost_note": lost_note or "",
    }


def record_reopen_stage(record, stage: Stage | None) -> Stage:
    """Where a reopened record goes: ``stage`` if given (an open stage of its pipeline), else the last
    open stage of its pipeline it was in according to its history, else the pipeline's first open stage.
    """
    if stage is not None:
        record_ensure_stage_in_pipeline(record, stage)
        if stage.is_closed:
            raise ValidationError(
                {"stage": f"“{stage.name}” is a won or lost stage: reopen into an open stage."}
            )
        return stage
    last_open = (
        record.stage_changes.filter(
            to_stage__pipeline=record.pipeline_id, to_stage__is_won=False, to_stage__is_lost=False
        )
        .select_related("to_stage")
        .order_by("-changed_at", "-id")
        .first()
    )
    if last_open is not None:
        return last_open.to_stage
    first = record.pipeline.first_stage()
    if first is None or first.is_closed:
        raise ValidationError(
            {"stage": f"The pipeline “{record.pipeline}” has no open stage to reopen this record into."}
        )
    return first


def pipeline_record_prepare_update(*, record, data: dict[str, Any]) -> Stage | None:
    """Resolve the pipeline and stage an update asks for, in place in ``data``.

    A new pipeline without a stage puts the record in that pipeline's first stage; a new stage brings
    its probability unless the update sets one. A closed record keeps its place. Returns the stage
    when it closes the record (won or lost), so the caller runs that transition after saving.
    """
    pipeline = data.get("pipeline", record.pipeline)
    stage = data.get("stage")
    pipeline_changed = "pipeline" in data and getattr(pipeline, "pk", None) != record.pipeline_id
    stage_changed = stage is not None and stage.pk != record.stage_id
    if not (pipeline_changed or stage_changed):
        data.pop("stage", None)
        return None
    record_ensure_open(record)
    if stage is None and pipeline is not None:
        stage = pipeline.first_stage()
        data["stage"] = stage
    if stage is not None and "probability" not in data:
        data["probability"] = stage.probability
    return stage if stage is not None and stage.is_closed else None
