"""Celery tasks of the background jobs."""

from celery import shared_task

from crm.jobs import runner


@shared_task(name="crm.jobs.tasks.job_run", ignore_result=True)
def job_run(pk: int) -> str:
    return runner.job_run(pk)


@shared_task(name="crm.jobs.tasks.jobs_queued_sweep", ignore_result=True)
def jobs_queued_sweep() -> int:
    """The periodic safety net: queue again the jobs whose task the broker never took, and those
    whose worker stopped mid-job (its lease ran out)."""
    from crm.events.dispatch import send

    pks = runner.jobs_requeue() + runner.jobs_reclaim()
    for pk in pks:
        send(job_run, pk)
    return len(pks)


@shared_task(name="crm.jobs.tasks.jobs_clean_up", ignore_result=True)
def jobs_clean_up() -> int:
    """Daily: finished jobs past CRM_JOB_RETENTION_DAYS go, with their stored files."""
    return runner.jobs_clean_up()
