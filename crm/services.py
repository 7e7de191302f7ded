"""Writes for the crm app. Every entry point (admin, API, import, commands) goes through these."""

from django.core.exceptions import ValidationError
from django.db import transaction

from crm.models import Pipeline


@transaction.atomic
def pipeline_save(*, pipeline: Pipeline) -> Pipeline:
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
def pipeline_set_default(*, pipeline: Pipeline) -> Pipeline:
    pipeline.is_default = True
    pipeline.is_active = True
    return pipeline_save(pipeline=pipeline)


def pipeline_delete_problems(*, pipeline: Pipeline) -> list[str]:
    """Why a pipeline cannot be deleted, beyond the records that still use its stages."""
    if pipeline.is_default and Pipeline.objects.exclude(pk=pipeline.pk).exists():
        return [
            f"“{pipeline}” is the default pipeline: make another pipeline the default before deleting it."
        ]
    return []


@transaction.atomic
def pipeline_delete(*, pipeline: Pipeline) -> None:
    problems = pipeline_delete_problems(pipeline=pipeline)
    if problems:
        raise ValidationError(problems)
    pipeline.delete()
