"""Celery tasks of the webhooks."""

import math

from celery import shared_task
from django.conf import settings

from crm.webhooks import delivery, sending

# Batches one task sends at most before it hands the rest to a new task (other tasks get a turn).
BATCHES_PER_TASK = 20


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


@shared_task(name="crm.webhooks.tasks.webhook_deliver_batch", ignore_result=True)
def webhook_deliver_batch() -> int:
    """Send due deliveries, WEBHOOK_DELIVERY_BATCH at a time on kept-alive connections, until none
    is due; returns how many were claimed."""
    claimed = 0
    with sending.Session() as session:
        for _ in range(BATCHES_PER_TASK):
            results = delivery.webhook_deliver_batch(session=session)
            claimed += len(results)
            if not results:
                return claimed
    from crm.events.dispatch import send

    send(webhook_deliver_batch)
    return claimed


@shared_task(name="crm.webhooks.tasks.webhook_deliveries_due", ignore_result=True)
def webhook_deliveries_due() -> int:
    """The periodic sweep: a batch task for every WEBHOOK_DELIVERY_BATCH due deliveries (retries,
    expired leases, lost kicks)."""
    from crm.events.dispatch import send

    due = delivery.deliveries_due()
    for _ in range(math.ceil(len(due) / settings.WEBHOOK_DELIVERY_BATCH)):
        send(webhook_deliver_batch)
    return len(due)
