"""Celery tasks of the webhooks."""

from celery import shared_task

from crm.webhooks import delivery


@shared_task(name="crm.webhooks.tasks.webhook_deliver", ignore_result=True)
def webhook_deliver(pk: int) -> str:
    status = delivery.webhook_deliver(pk)
    if status == "skipped":
        # Handed back by a worker that died mid-delivery (acks_late): its lease still runs, so come
        # back when it expires instead of waiting for the periodic sweep.
        from crm.events.dispatch import broker_configured

        remaining = delivery.lease_remaining(pk)
        if remaining is not None and broker_configured():
            webhook_deliver.apply_async(args=(pk,), countdown=remaining + 0.5, retry=False)
    return status


@shared_task(name="crm.webhooks.tasks.webhook_deliveries_due", ignore_result=True)
def webhook_deliveries_due() -> int:
    """The periodic sweep: queue every delivery that is due (retries, expired leases, lost kicks)."""
    from crm.events.dispatch import send

    due = delivery.deliveries_due()
    for pk in due:
        send(webhook_deliver, pk)
    return len(due)
