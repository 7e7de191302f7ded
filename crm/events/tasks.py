"""Celery tasks of the event engine."""

from celery import shared_task

from crm.events import dispatch, relay


@shared_task(name="crm.events.tasks.outbox_relay", ignore_result=True)
def outbox_relay() -> int:
    dispatch.relay_started()
    return relay.outbox_relay()
