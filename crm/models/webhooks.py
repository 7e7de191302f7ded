"""Webhook subscriptions and their deliveries: the outside world told of domain events, signed."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .base import TimeStampedModel


class WebhookSubscription(TimeStampedModel):
    """A target URL that receives the events matching ``event_types`` (``opportunity.*``, ``*``).

    Signed with ``secret`` (``whsec_`` + base64) as Standard Webhooks says. After
    WEBHOOK_DISABLE_AFTER_FAILURES failed attempts in a row it is disabled, with the reason.
    """

    name = models.CharField(max_length=120, blank=True)
    target_url = models.URLField(max_length=2000)
    event_types = models.JSONField(default=list, help_text="Event types; `*` wildcards: opportunity.*, *.")
    pipeline = models.ForeignKey(
        "crm.Pipeline",
        null=True,
        blank=True,
        on_delete=models.CASCADE,
        related_name="+",
        help_text="Only events of records in this pipeline (leads, opportunities). Empty: all.",
    )
    secret = models.CharField(max_length=200)
    is_active = models.BooleanField(default=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    consecutive_failures = models.PositiveIntegerField(default=0)
    disabled_at = models.DateTimeField(null=True, blank=True)
    disabled_reason = models.TextField(blank=True)

    class Meta:
        ordering = ("id",)
        verbose_name = "webhook subscription"

    def __str__(self) -> str:
        return self.name or self.target_url


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERING = "delivering", "Delivering"
    RETRYING = "retrying", "Failed, will retry"
    SUCCEEDED = "succeeded", "Succeeded"
    FAILED = "failed", "Failed"


class WebhookDelivery(models.Model):
    """One event sent to one subscription, over one or more attempts, under one ``webhook-id``.

    A worker claims it by moving it to ``delivering`` with a lease; a worker that dies leaves the
    lease to expire and the delivery is claimed again (same ``webhook-id``).
    """

    subscription = models.ForeignKey(WebhookSubscription, on_delete=models.CASCADE, related_name="deliveries")
    event = models.ForeignKey("crm.OutboxEvent", on_delete=models.CASCADE, related_name="+")
    webhook_id = models.CharField(max_length=64, default="", editable=False)
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_until = models.DateTimeField(null=True, blank=True)
    last_status_code = models.PositiveIntegerField(null=True, blank=True)
    last_duration_ms = models.PositiveIntegerField(null=True, blank=True)
    last_response = models.TextField(blank=True, help_text="The first bytes of the last answer.")
    last_error = models.TextField(blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "webhook delivery"
        verbose_name_plural = "webhook deliveries"
        constraints = [
            # The relay may hand an event over twice (at least once): one delivery per subscription.
            models.UniqueConstraint(fields=["subscription", "event"], name="crm_webhook_delivery_once"),
        ]
        indexes = [
            models.Index(
                fields=["next_attempt_at"],
                condition=Q(status__in=["pending", "delivering", "retrying"]),
                name="crm_webhook_delivery_due_idx",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.webhook_id} → {self.subscription}"


class WebhookAttempt(models.Model):
    """One HTTP attempt of a delivery: the delivery log."""

    delivery = models.ForeignKey(WebhookDelivery, on_delete=models.CASCADE, related_name="attempt_log")
    attempted_at = models.DateTimeField()
    status_code = models.PositiveIntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(default=0)
    response_excerpt = models.TextField(blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ("id",)

    def __str__(self) -> str:
        return f"{self.delivery_id} #{self.pk}: {self.status_code or self.error}"
