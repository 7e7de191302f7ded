"""The relay: hands pending outbox events to the registered consumers, oldest first."""

import logging

from django.conf import settings
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from crm.events.registry import consumers, type_matches
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
            _relay_batch(events, timezone.now())
            _outcomes_save(events)
        handled += len(events)
        last_id = events[-1].id
        if len(events) < batch:
            break
    return handled


def _relay_batch(events: list[OutboxEvent], now) -> None:
    """Hand ``events`` to every consumer whose pattern matches them, then mark each delivered, or
    pending again (failed after CRM_OUTBOX_MAX_ATTEMPTS) when one of its consumers raised."""
    errors: dict[int, list[str]] = {event.pk: [] for event in events}
    for name, pattern, consumer, batch in consumers():
        matching = [event for event in events if type_matches(pattern, event.type)]
        calls = [matching] if batch else [[event] for event in matching]
        for call in calls:
            if not call:
                continue
            try:
                with transaction.atomic():
                    consumer(call) if batch else consumer(call[0])
            except Exception as exc:
                logger.exception(
                    "Event consumer %s failed on %s", name, ", ".join(str(e.event_id) for e in call)
                )
                for event in call:
                    errors[event.pk].append(f"{name}: {exc!r}")
    for event in events:
        event.attempts += 1
        if errors[event.pk]:
            event.last_error = "\n".join(errors[event.pk])[:4000]
            if event.attempts >= settings.CRM_OUTBOX_MAX_ATTEMPTS:
                event.status = OutboxStatus.FAILED
            continue
        event.status, event.relayed_at, event.last_error = OutboxStatus.DELIVERED, now, ""


def _outcomes_save(events: list[OutboxEvent]) -> None:
    """Write the batch's outcomes: the delivered ones (nearly all) in one UPDATE, each failed one on
    its own. (``bulk_update``'s CASE per row and column cost a quarter of a second for 100 events.)"""
    delivered = [event for event in events if event.status == OutboxStatus.DELIVERED]
    if delivered:
        OutboxEvent.objects.filter(pk__in=[event.pk for event in delivered]).update(
            status=OutboxStatus.DELIVERED,
            relayed_at=delivered[0].relayed_at,
            last_error="",
            attempts=F("attempts") + 1,
        )
    for event in events:
        if event.status != OutboxStatus.DELIVERED:
            OutboxEvent.objects.filter(pk=event.pk).update(
                status=event.status, attempts=event.attempts, last_error=event.last_error
            )


def outbox_retry(*, events, user) -> int:
    """Put failed events back in the queue (the admin's action); returns how many."""
    count = OutboxEvent.objects.filter(pk__in=[e.pk for e in events], status=OutboxStatus.FAILED).update(
        status=OutboxStatus.PENDING, attempts=0
    )
    if count:
        from crm.events.publishing import relay_after_commit

        relay_after_commit()
    return count
