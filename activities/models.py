"""Activities: the calls, meetings, tasks, emails and notes logged against leads, deals and people."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.models import Account, Contact, Lead, Priority, TimeStampedModel
from crm.models.base import audit_history
from sales.models import Opportunity


class ActivityType(models.TextChoices):
    CALL = "call", "Call"
    MEETING = "meeting", "Meeting"
    TASK = "task", "Task"
    EMAIL = "email", "Email"
    NOTE = "note", "Note"


class ActivityStatus(models.TextChoices):
    SCHEDULED = "scheduled", "Scheduled"
    IN_PROGRESS = "in_progress", "In progress"
    COMPLETED = "completed", "Completed"
    CANCELLED = "cancelled", "Cancelled"


CLOSED_ACTIVITY_STATUSES = (ActivityStatus.COMPLETED, ActivityStatus.CANCELLED)
RELATED_FIELDS = ("lead", "opportunity", "contact", "account")


class ActivityQuerySet(models.QuerySet):
    def overdue(self, now=None):
        now = now or timezone.now()
        return self.exclude(status__in=CLOSED_ACTIVITY_STATUSES).filter(due_date__lt=now)


class Activity(TimeStampedModel):
    subject = models.CharField(max_length=200)
    activity_type = models.CharField(max_length=10, choices=ActivityType.choices, db_index=True)
    description = models.TextField(blank=True)
    due_date = models.DateTimeField(null=True, blank=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12,
        choices=ActivityStatus.choices,
        default=ActivityStatus.SCHEDULED,
        db_index=True,
    )
    priority = models.CharField(max_length=10, choices=Priority.choices, default=Priority.MEDIUM)
    lead = models.ForeignKey(Lead, on_delete=models.CASCADE, null=True, blank=True, related_name="activities")
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.CASCADE, null=True, blank=True, related_name="activities"
    )
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, null=True, blank=True, related_name="activities"
    )
    account = models.ForeignKey(
        Account, on_delete=models.PROTECT, null=True, blank=True, related_name="activities"
    )
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="owned_activities",
        db_index=False,  # act_owner_status_due starts with it
    )

    remind_at = models.DateTimeField(
        null=True, blank=True, help_text="When the owner is reminded of it (once). Empty: no reminder."
    )
    reminded_at = models.DateTimeField(
        null=True,
        blank=True,
        editable=False,
        help_text="When the reminder went out; cleared by a new remind_at.",
    )

    objects = ActivityQuerySet.as_manager()

    constraint_error_fields = {"activity_completed_at": "completed_at"}

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history()

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-due_date", "-id"]
        indexes = [
            models.Index(fields=["owner", "status", "due_date"], name="act_owner_status_due"),
            # The performance board's activities logged per owner in a period.
            models.Index(fields=["owner", "created_at"], name="act_owner_created"),
            # The reminders' periodic claim reads only the reminders not yet sent.
            models.Index(
                fields=["remind_at"], condition=Q(reminded_at__isnull=True), name="act_reminder_due"
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(
                    Q(lead__isnull=False)
                    | Q(opportunity__isnull=False)
                    | Q(contact__isnull=False)
                    | Q(account__isnull=False)
                ),
                name="activities_activity_linked_to_a_record",
                violation_error_code="activity_unlinked",
                violation_error_message=(
                    "Link the activity to at least one lead, opportunity, contact or account."
                ),
            ),
            models.CheckConstraint(
                condition=~Q(status=ActivityStatus.COMPLETED) | Q(completed_at__isnull=False),
                name="activities_activity_completed_has_date",
                violation_error_code="activity_completed_at",
                violation_error_message="A completed activity needs the time it was completed.",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.get_activity_type_display()}: {self.subject}"

    def clean(self):
        super().clean()
        if self.status == ActivityStatus.COMPLETED and self.completed_at is None:
            self.completed_at = timezone.now()

    @property
    def is_overdue(self) -> bool:
        return (
            self.status not in CLOSED_ACTIVITY_STATUSES
            and self.due_date is not None
            and self.due_date < timezone.now()
        )
