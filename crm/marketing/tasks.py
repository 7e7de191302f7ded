"""Celery tasks of email campaigns: each sends one batch, then queues the next (after the delay that
keeps all senders to the configured rate) while members wait."""

from celery import shared_task

from crm.marketing import sending


@shared_task(name="crm.marketing.tasks.campaign_send_batch", ignore_result=True)
def campaign_send_batch(campaign_id: int) -> int:
    from crm.events.dispatch import send

    sent, more = sending.campaign_send_batch(campaign_id=campaign_id)
    if more:
        delay = sending.campaign_send_delay()
        send(campaign_send_batch, campaign_id, countdown=delay or None)
    return sent
