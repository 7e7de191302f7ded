"""Celery tasks of the sequences."""

from celery import shared_task

from crm.sequences import runner


@shared_task(name="crm.sequences.tasks.sequence_enrollments_advance", ignore_result=True)
def sequence_enrollments_advance(bulk: bool = True) -> int:
    # ``bulk=False`` writes each step's email and activity on its own: the benchmark's baseline.
    return runner.sequence_enrollments_advance(bulk=bulk)
