"""The outbox of domain events: written in the transaction that changed a record, relayed after it."""

import uuid

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q


class OutboxStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    DELIVERED = "delivered", "Delivered"
    FAILED = "failed", "Failed"


class OutboxEvent(models.Model):
    """One domain event (``lead.updated``...). ``payload`` is exactly what consumers and webhooks get.

    The relay hands it to every in-process consumer and creates its webhook deliveries, then marks it
    delivered; a consumer that fails leaves it pending for the next relay, up to
    CRM_OUTBOX_MAX_ATTEMPTS, then failed (the admin can put it back). Delivery is at least once:
    consumers deduplicate by ``event_id``.
    """

    event_id = models.UUIDField(default=uuid.uuid4, unique=True, editable=False)
    type = models.CharField(max_length=64, db_index=True)
    occurred_at = models.DateTimeField()
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    record_type = models.CharField(max_length=64, help_text="The record's kind: lead, opportunity...")
    record_id = models.BigIntegerField(null=True)
    # The record's pipeline (leads, opportunities), for webhook subscriptions filtered by pipeline.
    pipeline_id = models.BigIntegerField(null=True, blank=True)
    payload = models.JSONField(encoder=DjangoJSONEncoder)
    status = models.CharField(max_length=16, choices=OutboxStatus.choices, default=OutboxStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    last_error = models.TextField(blank=True)
    relayed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ("-id",)
        verbose_name = "outbox event"
        indexes = [
            # The relay reads the pending events in order; delivered ones are the bulk of the table.
            models.Index(fields=["id"], condition=Q(status="pending"), name="crm_outbox_pending_idx"),
            models.Index(fields=["record_type", "record_id"], name="crm_outbox_record_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.type} {self.event_id}"
