"""Webhook deliveries: created from events by the relay, claimed and sent by workers, retried.

A delivery is claimed by a conditional UPDATE (``pending``/``retrying`` and due, or ``delivering``
with an expired lease), so two workers never send it at once, and a worker killed mid-delivery
leaves a lease that expires: the next sweep sends it again, under the same ``webhook-id``.
"""

import datetime
import json
import logging

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.events.registry import type_matches
from crm.models import DeliveryStatus, OutboxEvent, WebhookAttempt, WebhookDelivery, WebhookSubscription
from crm.webhooks import sending, signing

logger = logging.getLogger("crm.webhooks")

DELIVERY_RESULT_FIELDS = [
    "status",
    "next_attempt_at",
    "lease_until",
    "last_status_code",
    "last_duration_ms",
    "last_response",
    "last_error",
    "delivered_at",
]
# Internal event types (the engine's own, e.g. webhook.disabled) are never sent to webhooks.
INTERNAL_PREFIXES = ("webhook.",)


def subscription_matches(subscription: WebhookSubscription, event: OutboxEvent) -> bool:
    if subscription.pipeline_id is not None and subscription.pipeline_id != event.pipeline_id:
        return False
    return any(type_matches(pattern, event.type) for pattern in subscription.event_types)


def webhook_fan_out(events: list[OutboxEvent]) -> None:
    """The relay's consumer (a batch at a time): one delivery per event and matching active
    subscription, each sent after the relay's transaction commits."""
    events = [event for event in events if not event.type.startswith(INTERNAL_PREFIXES)]
    subscriptions = list(WebhookSubscription.objects.filter(is_active=True)) if events else []
    if not subscriptions:
        return
    now = timezone.now()
    WebhookDelivery.objects.bulk_create(
        [
            WebhookDelivery(
                subscription=s, event=event, webhook_id=f"msg_{event.event_id.hex}", next_attempt_at=now
            )
            for event in events
            for s in subscriptions
            if subscription_matches(s, event)
        ],
        ignore_conflicts=True,  # relayed twice: the first relay's deliveries stand
    )
    from crm.events.dispatch import send_after_commit
    from crm.webhooks.tasks import webhook_deliver

    for pk in WebhookDelivery.objects.filter(
        event__in=events, status=DeliveryStatus.PENDING, attempts=0
    ).values_list("pk", flat=True):
        send_after_commit(webhook_deliver, pk)


def lease_seconds() -> float:
    return settings.WEBHOOK_TIMEOUT * (settings.WEBHOOK_MAX_REDIRECTS + 1) + 5


def delivery_claim(pk: int, now: datetime.datetime | None = None) -> bool:
    now = now or timezone.now()
    claimable = Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lte=now) | Q(
        status=DeliveryStatus.DELIVERING, lease_until__lt=now
    )
    return bool(
        WebhookDelivery.objects.filter(claimable, pk=pk, subscription__is_active=True).update(
            status=DeliveryStatus.DELIVERING,
            lease_until=now + datetime.timedelta(seconds=lease_seconds()),
            attempts=F("attempts") + 1,
        )
    )


def lease_remaining(pk: int) -> float | None:
    """Seconds until the lease of a delivery being sent expires; None when it is not being sent."""
    lease_until = (
        WebhookDelivery.objects.filter(pk=pk, status=DeliveryStatus.DELIVERING)
        .values_list("lease_until", flat=True)
        .first()
    )
    if lease_until is None:
        return None
    return max((lease_until - timezone.now()).total_seconds(), 0.0)


def delivery_body(event: OutboxEvent) -> bytes:
    body = json.dumps(event.payload, cls=DjangoJSONEncoder, separators=(",", ":")).encode()
    if len(body) <= settings.WEBHOOK_MAX_PAYLOAD_BYTES:
        return body
    # Too large to send whole: the event without its record, which the receiver reads from the API.
    slim = {k: v for k, v in event.payload.items() if k not in ("record", "changes")}
    slim["record"] = {"id": event.record_id}
    slim["truncated"] = True
    return json.dumps(slim, cls=DjangoJSONEncoder, separators=(",", ":")).encode()


def webhook_deliver(pk: int) -> str:
    """Claim and send one delivery; returns its status afterwards ("skipped" when not claimable)."""
    if not delivery_claim(pk):
        return "skipped"
    delivery = WebhookDelivery.objects.select_related("subscription", "event").get(pk=pk)
    body = delivery_body(delivery.event)
    timestamp = int(timezone.now().timestamp())
    try:
        headers = signing.headers(
            secret=delivery.subscription.secret,
            webhook_id=delivery.webhook_id,
            timestamp=timestamp,
            body=body,
        )
    except ValueError as exc:
        answer = sending.Answer(None, b"", 0, error=str(exc), refused=True)
    else:
        answer = sending.post(delivery.subscription.target_url, body, headers)
    return delivery_record_attempt(delivery, answer)


@transaction.atomic
def delivery_record_attempt(delivery: WebhookDelivery, answer: sending.Answer) -> str:
    """Log the attempt, then succeed, schedule the retry, or give up (and maybe disable)."""
    now = timezone.now()
    excerpt = answer.body[: settings.WEBHOOK_RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")
    WebhookAttempt.objects.create(
        delivery=delivery,
        attempted_at=now,
        status_code=answer.status_code,
        duration_ms=answer.duration_ms,
        response_excerpt=excerpt,
        error=answer.error,
    )
    delivery.last_status_code = answer.status_code
    delivery.last_duration_ms = answer.duration_ms
    delivery.last_response = excerpt
    delivery.lease_until = None
    if answer.ok:
        delivery.status, delivery.delivered_at, delivery.last_error = DeliveryStatus.SUCCEEDED, now, ""
        delivery.next_attempt_at = None
        # The usual case writes nothing more: only a subscription that had failed is reset.
        if delivery.subscription.consecutive_failures:
            WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(consecutive_failures=0)
    else:
        subscription = WebhookSubscription.objects.select_for_update().get(pk=delivery.subscription_id)
        delivery.last_error = answer.error or f"The target answered {answer.status_code}."
        schedule = settings.WEBHOOK_RETRY_SCHEDULE
        if answer.refused or delivery.attempts > len(schedule):
            delivery.status, delivery.next_attempt_at = DeliveryStatus.FAILED, None
        else:
            delay = schedule[delivery.attempts - 1]
            delivery.status = DeliveryStatus.RETRYING
            delivery.next_attempt_at = now + datetime.timedelta(seconds=delay)
            if delay <= 60:
                from crm.events.dispatch import broker_configured, send_after_commit
                from crm.webhooks.tasks import webhook_deliver as task

                if broker_configured():
                    send_after_commit(task, delivery.pk, countdown=delay)
        subscription.consecutive_failures += 1
        subscription.save(update_fields=["consecutive_failures"])
        if (
            subscription.is_active
            and subscription.consecutive_failures >= settings.WEBHOOK_DISABLE_AFTER_FAILURES
        ):
            subscription_disable(subscription, reason=delivery.last_error, now=now)
    delivery.save(update_fields=DELIVERY_RESULT_FIELDS)
    return delivery.status


def subscription_disable(subscription: WebhookSubscription, *, reason: str, now) -> None:
    """Disable a subscription that keeps failing and tell its owner.

    The reason is shown in the admin and the API and logged as a warning; the ``webhook.disabled``
    event it publishes notifies the owner (crm.notifications.consumers.webhook_disabled: in the app and
    by email unless they chose otherwise).
    """
    subscription.is_active = False
    subscription.disabled_at = now
    subscription.disabled_reason = (
        f"Disabled after {subscription.consecutive_failures} failed attempts in a row; the last: {reason}"
    )
    subscription.save(update_fields=["is_active", "disabled_at", "disabled_reason", "updated_at"])
    logger.warning(
        "Webhook subscription %s (%s, owner %s) disabled: %s",
        subscription.pk,
        subscription.target_url,
        subscription.owner_id,
        subscription.disabled_reason,
    )
    from crm.actors import SYSTEM
    from crm.events.publishing import event_publish

    event_publish(
        type="webhook.disabled",
        user=SYSTEM,
        record={
            "id": subscription.pk,
            "target_url": subscription.target_url,
            "owner_id": subscription.owner_id,
            "disabled_reason": subscription.disabled_reason,
        },
        record_type="webhook",
        record_id=subscription.pk,
    )


def deliveries_due(*, now: datetime.datetime | None = None, limit: int = 1000) -> list[int]:
    """Deliveries to send now: due retries, expired leases (a worker died), pending ones left behind."""
    now = now or timezone.now()
    return list(
        WebhookDelivery.objects.filter(
            Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lte=now)
            | Q(status=DeliveryStatus.DELIVERING, lease_until__lt=now),
            subscription__is_active=True,
        )
        .order_by("next_attempt_at")
        .values_list("pk", flat=True)[:limit]
    )
