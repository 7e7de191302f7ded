"""Celery tasks of the notifications."""

from celery import shared_task

from crm.notifications import services


@shared_task(name="crm.notifications.tasks.notification_email_send", ignore_result=True)
def notification_email_send(pk: int) -> bool:
    return services.notification_email_send(notification_id=pk)
