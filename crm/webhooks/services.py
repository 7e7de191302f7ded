"""Writes for webhook subscriptions and deliveries. Only a CRM Admin or a superuser manages webhooks:
a subscription sees every event of every record, whoever may see it."""

from collections.abc import Mapping
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.utils import timezone

from crm.actors import Actor, is_system, person
from crm.events.registry import event_types, type_matches
from crm.models import DeliveryStatus, WebhookDelivery, WebhookSubscription
from crm.services import record_delete, record_lock, record_save
from crm.webhooks import sending, signing

MANAGE_REFUSED = "Only a CRM Admin or a superuser may manage webhooks."


def webhooks_manageable_by(user: Actor) -> bool:
    if is_system(user):
        return True
    from crm.selectors import user_sees_everything

    return user_sees_everything(user)


def _ensure_may_manage(user: Actor) -> None:
    if not webhooks_manageable_by(user):
        raise PermissionDenied(MANAGE_REFUSED)


def _clean(data: Mapping[str, Any], subscription: WebhookSubscription) -> dict[str, Any]:
    data = dict(data)
    errors: dict[str, str] = {}
    if "target_url" in data:
        try:
            sending.target_check(data["target_url"])
        except sending.TargetRefused as exc:
            errors["target_url"] = str(exc)
    if "event_types" in data:
        patterns = data["event_types"]
        known = event_types()
        if not isinstance(patterns, list) or not patterns:
            errors["event_types"] = "Give at least one event type, e.g. “opportunity.won” or “lead.*”."
        else:
            unknown = [p for p in patterns if not any(type_matches(p, t) for t in known)]
            if unknown:
                errors["event_types"] = (
                    f"No event matches {', '.join(map(str, unknown))}. Known types: {', '.join(known)}."
                )
    if data.get("secret"):
        try:
            signing.secret_key(data["secret"])
        except ValueError as exc:
            errors["secret"] = str(exc)
    elif "secret" in data or subscription.pk is None:
        data["secret"] = signing.secret_new()
    if errors:
        raise ValidationError(errors)
    if data.get("is_active") and not subscription.is_active:
        # Switched on again: a fresh start.
        data.update(consecutive_failures=0, disabled_at=None, disabled_reason="")
    return data


@transaction.atomic
def webhook_subscription_create(*, user: Actor, data: Mapping[str, Any]) -> WebhookSubscription:
    _ensure_may_manage(user)
    subscription = WebhookSubscription()
    data = _clean(data, subscription)
    if data.get("owner") is None:  # someone is told when it fails: the creator unless named
        data["owner"] = person(user)
    return record_save(instance=subscription, data=data)


@transaction.atomic
def webhook_subscription_update(
    *, subscription: WebhookSubscription, user: Actor, data: Mapping[str, Any]
) -> WebhookSubscription:
    _ensure_may_manage(user)
    subscription = record_lock(subscription)
    return record_save(instance=subscription, data=_clean(data, subscription))


@transaction.atomic
def webhook_subscription_delete(*, subscription: WebhookSubscription, user: Actor) -> None:
    _ensure_may_manage(user)
    record_delete(instance=subscription, user=user)


@transaction.atomic
def webhook_delivery_redeliver(*, delivery: WebhookDelivery, user: Actor) -> WebhookDelivery:
    """Send a delivery again now, with the same ``webhook-id`` (receivers deduplicate by it)."""
    _ensure_may_manage(user)
    delivery = record_lock(delivery)
    if (
        delivery.status == DeliveryStatus.DELIVERING
        and delivery.lease_until
        and delivery.lease_until > timezone.now()
    ):
        raise ValidationError("This delivery is being sent right now: redeliver it once the attempt ends.")
    if not delivery.subscription.is_active:
        raise ValidationError("The subscription is disabled: activate it before redelivering.")
    delivery.status, delivery.next_attempt_at, delivery.lease_until = (
        DeliveryStatus.PENDING,
        timezone.now(),
        None,
    )
    delivery.save(update_fields=["status", "next_attempt_at", "lease_until"])
    from crm.events.dispatch import send_after_commit
    from crm.webhooks.tasks import webhook_deliver

    send_after_commit(webhook_deliver, delivery.pk)
    return delivery
