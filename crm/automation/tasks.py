"""Celery tasks of the automation engine."""

from celery import shared_task

from crm.automation import engine


@shared_task(name="crm.automation.tasks.automation_run_execute", ignore_result=True)
def automation_run_execute(pk: int) -> str:
    return engine.run_execute(pk)


@shared_task(name="crm.automation.tasks.automation_time_scan", ignore_result=True)
def automation_time_scan() -> int:
    return engine.time_scan()


@shared_task(name="crm.automation.tasks.automation_schedule_tick", ignore_result=True)
def automation_schedule_tick() -> int:
    return engine.schedule_tick()


@shared_task(name="crm.automation.tasks.automation_runs_due", ignore_result=True)
def automation_runs_due() -> int:
    """The periodic sweep: queue every run that waits (due retries, lost tasks, expired leases)."""
    from crm.events.dispatch import send

    due = engine.runs_due()
    for pk in due:
        send(automation_run_execute, pk)
    return len(due)
