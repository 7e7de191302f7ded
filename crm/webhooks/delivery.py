"""Webhook deliveries: created from events by the relay, claimed and sent by workers, retried.

Deliveries go out in batches (up to WEBHOOK_DELIVERY_BATCH a task): the batch is claimed at once
(``pending``/``retrying`` and due, or ``delivering`` with an expired lease; rows locked with
``SKIP LOCKED`` on PostgreSQL, a conditional UPDATE a row elsewhere), so two workers never send a
delivery at once. The POSTs reuse a kept-alive connection per target, and the results are written
in one transaction at the end. A worker killed mid-batch leaves leases that expire: the next sweep
sends those deliveries again, under the same ``webhook-id``. A target that fails (an error answer,
a timeout, a refusal) gets one attempt a batch: its other deliveries are handed back, unattempted,
so it holds up no other target's.
"""

import datetime
import json
import logging
import math
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import connection, transaction
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
    created = list(
        WebhookDelivery.objects.filter(event__in=events, status=DeliveryStatus.PENDING, attempts=0)
        .order_by("id")
        .values_list("pk", flat=True)
    )
    if created:
        transaction.on_commit(lambda: deliveries_after_relay(created))


def deliveries_after_relay(pks: list[int]) -> None:
    """Once the relay commits: tasks for all but the first batch, then that batch sent right here.

    The relay (a worker's task, or the web process without a broker) sends the first batch itself:
    no round trip through the queue between an event and its webhooks.
    """
    from crm.events.dispatch import broker_configured, send
    from crm.webhooks.tasks import webhook_deliver_batch as task

    size = settings.WEBHOOK_DELIVERY_BATCH
    if broker_configured():
        for _ in range(math.ceil((len(pks) - size) / size)):
            send(task)
    try:
        webhook_deliver_batch(pks=pks[:size])
    except Exception:
        # The relay's events are committed: what this batch left claimed goes out once its lease ends.
        logger.exception("Webhook batch after the relay failed")
    if not broker_configured() and len(pks) > size:
        send(task)


def lease_seconds() -> float:
    return settings.WEBHOOK_TIMEOUT * (settings.WEBHOOK_MAX_REDIRECTS + 1) + 5


def _claimable(now: datetime.datetime) -> Q:
    return Q(status__in=[DeliveryStatus.PENDING, DeliveryStatus.RETRYING], next_attempt_at__lte=now) | Q(
        status=DeliveryStatus.DELIVERING, lease_until__lt=now
    )


def delivery_claim(pk: int, now: datetime.datetime | None = None) -> bool:
    now = now or timezone.now()
    return bool(
        WebhookDelivery.objects.filter(_claimable(now), pk=pk, subscription__is_active=True).update(
            status=DeliveryStatus.DELIVERING,
            lease_until=now + datetime.timedelta(seconds=lease_seconds()),
            attempts=F("attempts") + 1,
        )
    )


def deliveries_claim(
    *, pks: list[int] | None = None, limit: int | None = None, now: datetime.datetime | None = None
) -> list[WebhookDelivery]:
    """Claim up to ``limit`` (WEBHOOK_DELIVERY_BATCH) due deliveries, among ``pks`` when given, oldest
    due first; returns them with their subscription (one instance per subscription) and event."""
    now = now or timezone.now()
    limit = limit or settings.WEBHOOK_DELIVERY_BATCH
    candidates = WebhookDelivery.objects.filter(_claimable(now), subscription__is_active=True)
    if pks is not None:
        candidates = candidates.filter(pk__in=pks)
    candidates = candidates.order_by("next_attempt_at", "id")
    if connection.features.has_select_for_update_skip_locked:
        # Rows another worker is claiming are skipped, not waited for; the UPDATE takes the rows
        # this SELECT locked, which nobody else can claim before it commits.
        with transaction.atomic():
            claimed = list(
                candidates.select_for_update(skip_locked=True, of=("self",)).values_list("pk", flat=True)[
                    :limit
                ]
            )
            if claimed:
                WebhookDelivery.objects.filter(pk__in=claimed).update(
                    status=DeliveryStatus.DELIVERING,
                    lease_until=now + datetime.timedelta(seconds=lease_seconds()),
                    attempts=F("attempts") + 1,
                )
    else:  # SQLite: one conditional UPDATE a delivery (writes are serialized: one claim wins)
        claimed = [pk for pk in candidates.values_list("pk", flat=True)[:limit] if delivery_claim(pk, now)]
    if not claimed:
        return []
    batch = list(
        WebhookDelivery.objects.select_related("subscription", "event").filter(pk__in=claimed).order_by("id")
    )
    subscriptions: dict[int, WebhookSubscription] = {}
    for delivery in batch:  # failures and resets of a subscription seen by its next delivery in the batch
        delivery.subscription = subscriptions.setdefault(delivery.subscription_id, delivery.subscription)
    return batch


def _lease_extend(pks: list[int]) -> float:
    """Renew the lease of a batch still being sent; returns when (monotonic) the new one ends."""
    WebhookDelivery.objects.filter(pk__in=pks, status=DeliveryStatus.DELIVERING).update(
        lease_until=timezone.now() + datetime.timedelta(seconds=lease_seconds())
    )
    return time.monotonic() + lease_seconds()


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
    return webhook_deliver_batch(pks=[pk]).get(pk, "skipped")


def webhook_deliver_batch(
    *, pks: list[int] | None = None, limit: int | None = None, session: sending.Session | None = None
) -> dict[int, str]:
    """Claim up to ``limit`` due deliveries (among ``pks`` when given), send them on kept-alive
    connections (``session``, else one for this batch) and record the results in one transaction.

    Returns ``{pk: status afterwards}`` for the claimed ones; a delivery handed back unattempted
    (its target failed earlier in the batch) is ``pending``/``retrying`` again and due.
    """
    batch = deliveries_claim(pks=pks, limit=limit)
    if not batch:
        return {}
    own_session = session is None
    session = session or sending.Session()
    attempt_max = lease_seconds() - 5
    lease_ends = time.monotonic() + lease_seconds()
    results: list[tuple[WebhookDelivery, sending.Answer | None]] = []
    failed_targets: set[str] = set()
    try:
        for delivery in batch:
            target = delivery_target(delivery.subscription.target_url)
            if target in failed_targets:
                results.append((delivery, None))  # handed back: the target just failed
                continue
            if lease_ends - time.monotonic() < attempt_max + 2:
                lease_ends = _lease_extend([d.pk for d in batch])
            answer = delivery_send(delivery, session)
            if not answer.ok:
                failed_targets.add(target)
            results.append((delivery, answer))
    finally:
        if own_session:
            session.close()
    return deliveries_record(results)


def delivery_target(url: str) -> str:
    """The origin a target URL is sent to (its failures hold back the batch's other POSTs there)."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def delivery_send(delivery: WebhookDelivery, session: sending.Session | None = None) -> sending.Answer:
    """Sign and POST one claimed delivery (its webhook-id the same on every attempt)."""
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
        return sending.Answer(None, b"", 0, error=str(exc), refused=True)
    return sending.post(delivery.subscription.target_url, body, headers, session=session)


@transaction.atomic
def deliveries_record(results: list[tuple[WebhookDelivery, sending.Answer | None]]) -> dict[int, str]:
    """Write a batch's results in order: successes in one INSERT of attempts and one UPDATE, each
    failure as delivery_record_attempt does, deliveries not attempted (answer None) handed back."""
    now = timezone.now()
    attempts, succeeded, handed_back = [], [], []
    for delivery, answer in results:
        if answer is None:
            delivery.attempts -= 1
            delivery.status = DeliveryStatus.RETRYING if delivery.attempts else DeliveryStatus.PENDING
            delivery.next_attempt_at, delivery.lease_until = now, None
            handed_back.append(delivery)
        elif answer.ok:
            attempts.append(_attempt(delivery, answer, now))
            _record_success(delivery, answer, now)
            succeeded.append(delivery)
        else:
            delivery_record_attempt(delivery, answer)
    WebhookAttempt.objects.bulk_create(attempts)
    WebhookDelivery.objects.bulk_update(succeeded, DELIVERY_RESULT_FIELDS)
    WebhookDelivery.objects.bulk_update(handed_back, ["status", "attempts", "next_attempt_at", "lease_until"])
    return {delivery.pk: delivery.status for delivery, _ in results}


def _attempt(delivery: WebhookDelivery, answer: sending.Answer, now) -> WebhookAttempt:
    return WebhookAttempt(
        delivery=delivery,
        attempted_at=now,
        status_code=answer.status_code,
        duration_ms=answer.duration_ms,
        response_excerpt=_excerpt(answer),
        error=answer.error,
    )


def _excerpt(answer: sending.Answer) -> str:
    return answer.body[: settings.WEBHOOK_RESPONSE_EXCERPT_BYTES].decode("utf-8", "replace")


def _record_success(delivery: WebhookDelivery, answer: sending.Answer, now) -> None:
    delivery.last_status_code = answer.status_code
    delivery.last_duration_ms = answer.duration_ms
    delivery.last_response = _excerpt(answer)
    delivery.lease_until = None
    delivery.status, delivery.delivered_at, delivery.last_error = DeliveryStatus.SUCCEEDED, now, ""
    delivery.next_attempt_at = None
    # The usual case writes nothing more: only a subscription that had failed is reset.
    if delivery.subscription.consecutive_failures:
        WebhookSubscription.objects.filter(pk=delivery.subscription_id).update(consecutive_failures=0)
        delivery.subscription.consecutive_failures = 0


@transaction.atomic
def delivery_record_attempt(delivery: WebhookDelivery, answer: sending.Answer) -> str:
    """Log the attempt, then succeed, schedule the retry, or give up (and maybe disable)."""
    now = timezone.now()
    _attempt(delivery, answer, now).save()
    if answer.ok:
        _record_success(delivery, answer, now)
        delivery.save(update_fields=DELIVERY_RESULT_FIELDS)
        return delivery.status
    delivery.last_status_code = answer.status_code
    delivery.last_duration_ms = answer.duration_ms
    delivery.last_response = _excerpt(answer)
    delivery.lease_until = None
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
    # The batch's later deliveries to this subscription see the new count.
    delivery.subscription.consecutive_failures = subscription.consecutive_failures
    delivery.subscription.is_active = subscription.is_active
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
