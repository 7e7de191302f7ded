"""Celery tasks of outgoing email."""

from celery import shared_task

from crm.messaging import services


@shared_task(name="crm.messaging.tasks.outgoing_email_send", ignore_result=True)
def outgoing_email_send(pk: int) -> int:
    return services.outgoing_email_send(email_id=pk)


@shared_task(name="crm.messaging.tasks.outgoing_emails_queued_send", ignore_result=True)
def outgoing_emails_queued_send() -> int:
    """The periodic safety net: send what a sender left queued (a worker killed after the commit),
    and mark failed what a sender left "sending" past a job's lease (killed mid-send: not resent)."""
    services.outgoing_emails_mark_interrupted()
    return services.outgoing_emails_send(ids=services.outgoing_emails_queued())
