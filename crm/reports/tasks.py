"""Celery tasks of the reports: the scheduled e-mails of saved reports (beat, hourly)."""

from celery import shared_task


@shared_task(name="crm.reports.tasks.saved_reports_send_due", ignore_result=True)
def saved_reports_send_due() -> int:
    from crm.reports.services import saved_reports_send_due as send

    return send()


@shared_task(name="crm.reports.tasks.reached_stages_rebuild", ignore_result=True)
def reached_stages_rebuild() -> int:
    """Recount the furthest stages of the records of pipelines whose stage order changed (beat)."""
    from crm.reached import pipelines_rebuild

    return pipelines_rebuild()
