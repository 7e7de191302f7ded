"""Celery tasks of the webhooks."""

from celery import shared_task

from crm.webhooks import delivery


@shared_task(name="crm.webhooks.tasks.webhook_deliver", ignore_result=True)
def webhook_deliver(pk: int) -> str:
    return delivery.webhook_deliver(pk)


@shared_task(name="crm.webhooks.tasks.webhook_deliveries_due", ignore_result=True)
def webhook_deliveries_due() -> int:
    """The periodic sweep: queue every delivery that is due (retries, expired leases, lost kicks)."""
    from crm.events.dispatch import send

    due = delivery.deliveries_due()
    for pk in due:
        send(webhook_deliver, pk)
    return len(due)
