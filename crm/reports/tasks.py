"""Celery tasks of the reports: the scheduled e-mails of saved reports (beat, hourly)."""

from celery import shared_task


@shared_task(name="crm.reports.tasks.saved_reports_send_due", ignore_result=True)
def saved_reports_send_due() -> int:
    from crm.reports.services import saved_reports_send_due as send

    return send()
