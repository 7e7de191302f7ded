"""Privacy requests: the record that a person's data was exported or erased, without the data itself."""

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.db.models import Q

from .base import ValidatedModel


class PrivacyRequestKind(models.TextChoices):
    EXPORT = "export", "Export (everything held about a person)"
    ERASURE = "erasure", "Erasure (anonymise the person everywhere)"
    RETENTION = "retention", "Retention (leads past the retention period anonymised)"


class PrivacyRequest(ValidatedModel):
    """One export, erasure or retention run: when, by whom (empty: the system), which records.

    An erasure keeps only a keyed hash of the address (``email_hash``), so one can later check whether
    an address was erased without the log naming anyone; an export keeps the address to be downloaded
    again, until an erasure of that address clears it.
    """

    kind = models.CharField(max_length=10, choices=PrivacyRequestKind.choices)
    email = models.EmailField(blank=True, help_text="Exports only; erasures keep the hash alone.")
    email_hash = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    # {"leads": [3, 4], "activities": [12]}: the ids touched (erasure) or exported, by kind of record.
    records = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)
    counts = models.JSONField(default=dict, blank=True, help_text='{"leads": 2, "activities": 1}')

    class Meta:
        ordering = ("-created_at", "-id")
        verbose_name = "privacy request"
        constraints = [
            models.CheckConstraint(
                condition=Q(kind="export") | Q(email=""),
                name="crm_privacyrequest_erasure_keeps_no_email",
                violation_error_message="An erasure or retention run does not keep the address.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_kind_display().split(' (')[0]} #{self.pk}"

    @property
    def total(self) -> int:
        return sum(int(n) for n in (self.counts or {}).values())
