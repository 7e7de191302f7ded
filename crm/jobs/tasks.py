"""Celery tasks of the background jobs."""

from celery import shared_task

from crm.jobs import runner


@shared_task(name="crm.jobs.tasks.job_run", ignore_result=True)
def job_run(pk: int) -> str:
    return runner.job_run(pk)


@shared_task(name="crm.jobs.tasks.jobs_queued_sweep", ignore_result=True)
def jobs_queued_sweep() -> int:
    """The periodic safety net: queue again the jobs whose task the broker never took."""
    from crm.events.dispatch import send

    pks = runner.jobs_requeue()
    for pk in pks:
        send(job_run, pk)
    return len(pks)
