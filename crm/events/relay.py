"""The relay: hands pending outbox events to the registered consumers, oldest first."""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from crm.events.registry import consumers_for
from crm.models import OutboxEvent, OutboxStatus

logger = logging.getLogger("crm.events")


def outbox_relay(*, batch: int | None = None) -> int:
    """Relay every pending event; returns how many were handled.

    Batches are locked with ``SKIP LOCKED`` (PostgreSQL), so relays running at once share the work
    instead of handing an event over twice; a relay that dies mid-batch rolls back and the next one
    takes the batch again (at least once).
    """
    batch = batch or settings.CRM_OUTBOX_BATCH
    handled, last_id = 0, 0
    while True:
        with transaction.atomic():
            events = list(
                OutboxEvent.objects.select_for_update(skip_locked=True)
                .filter(status=OutboxStatus.PENDING, id__gt=last_id)
                .order_by("id")[:batch]
            )
            if not events:
                break
            now = timezone.now()
            for event in events:
                _relay_one(event, now)
            OutboxEvent.objects.bulk_update(events, ["status", "attempts", "last_error", "relayed_at"])
        handled += len(events)
        last_id = events[-1].id
        if len(events) < batch:
            break
    return handled


def _relay_one(event: OutboxEvent, now) -> None:
    errors = []
    for name, consumer in consumers_for(event.type):
        try:
            with transaction.atomic():
                consumer(event)
        except Exception as exc:
            logger.exception("Event consumer %s failed on %s %s", name, event.type, event.event_id)
            errors.append(f"{name}: {exc!r}")
    event.attempts += 1
    if errors:
        event.last_error = "\n".join(errors)[:4000]
        if event.attempts >= settings.CRM_OUTBOX_MAX_ATTEMPTS:
            event.status = OutboxStatus.FAILED
        return
    event.status, event.relayed_at, event.last_error = OutboxStatus.DELIVERED, now, ""


def outbox_retry(*, events, user) -> int:
    """Put failed events back in the queue (the admin's action); returns how many."""
    count = OutboxEvent.objects.filter(pk__in=[e.pk for e in events], status=OutboxStatus.FAILED).update(
        status=OutboxStatus.PENDING, attempts=0
    )
    if count:
        from crm.events.publishing import relay_after_commit

        relay_after_commit()
    return count
