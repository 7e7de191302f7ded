"""Activities: the calls, meetings, tasks, emails and notes logged against leads, deals and people."""

import uuid

from dateutil.rrule import rrulestr
from django.conf import settings
from django.core.exceptions import ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from django.utils import timezone

from crm.models import Account, Contact, Lead, Priority, TimeStampedModel
from crm.models.base import ValidatedModel, audit_history
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


DEFAULT_DURATION_MINUTES = 30


def rrule_validator(value: str) -> None:
    """An RRULE as RFC 5545 writes it (without the ``RRULE:`` prefix), that dateutil can expand."""
    if not value:
        return
    text = value.strip().removeprefix("RRULE:")
    if "\n" in text or "\r" in text or "FREQ=" not in text.upper():
        raise ValidationError("Write one RRULE, such as FREQ=WEEKLY;BYDAY=MO;COUNT=10.", code="rrule")
    try:
        rrulestr(text, dtstart=timezone.now(), forceset=False)
    except (ValueError, TypeError, OverflowError, IndexError, KeyError) as exc:
        raise ValidationError(f"Not an RRULE: {exc}.", code="rrule") from exc


class ActivityQuerySet(models.QuerySet):
    def overdue(self, now=None):
        now = now or timezone.now()
        return self.exclude(status__in=CLOSED_ACTIVITY_STATUSES).filter(due_date__lt=now)


class Activity(TimeStampedModel):
    subject = models.CharField(max_length=200)
    activity_type = models.CharField(max_length=10, choices=ActivityType.choices)  # indexed: act_type
    description = models.TextField(blank=True)
    due_date = models.DateTimeField(null=True, blank=True, db_index=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    status = models.CharField(
        max_length=12,
        choices=ActivityStatus.choices,
        default=ActivityStatus.SCHEDULED,
    )  # indexed: act_status
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

    duration_minutes = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(60 * 24 * 31)],
        help_text="How long it lasts from its due date, in minutes (the calendar's end time). Empty: 30.",
    )
    recurrence = models.CharField(
        max_length=500,
        blank=True,
        validators=[rrule_validator],
        help_text="Repeats by an iCalendar RRULE from its due date: FREQ=WEEKLY;BYDAY=MO;COUNT=10. "
        "Empty: once.",
    )
    template = models.ForeignKey(
        "activities.ActivityTemplate",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The template it was made from: its follow-up rule applies when it is completed.",
    )

    objects = ActivityQuerySet.as_manager()

    constraint_error_fields = {"activity_completed_at": "completed_at"}

    # Who changed what and when, through every entry point (the import engine writes its rows in bulk).
    history = audit_history()

    class Meta:
        verbose_name_plural = "activities"
        ordering = ["-due_date", "-id"]
        indexes = [
            # A plain B-tree each: db_index=True on a CharField also gives PostgreSQL a second index for
            # LIKE 'prefix%' (varchar_pattern_ops), which no search of a choice needs and every insert
            # kept up (the seed built each in 10 s at 10 million activities).
            models.Index(fields=["activity_type"], name="act_type"),
            models.Index(fields=["status"], name="act_status"),
            models.Index(fields=["owner", "status", "due_date"], name="act_owner_status_due"),
            # An agenda: the open activities of an owner (or of everyone) by due date, the overdue
            # first. Without them the oldest due dates of every owner's closed activities were read
            # and thrown away, more of them as the table grows (16,000 rows at 10M activities).
            models.Index(
                fields=["owner", "due_date", "id"],
                condition=~Q(status__in=CLOSED_ACTIVITY_STATUSES),
                name="act_owner_open_due",
            ),
            models.Index(
                fields=["due_date", "id"],
                condition=~Q(status__in=CLOSED_ACTIVITY_STATUSES),
                name="act_open_due",
            ),
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


class ActivityTemplate(TimeStampedModel):
    """A ready-made activity: its type, subject, script or agenda, duration, and what follows it."""

    name = models.CharField(max_length=100, unique=True)
    activity_type = models.CharField(max_length=10, choices=ActivityType.choices, default=ActivityType.CALL)
    subject = models.CharField(max_length=200, blank=True, help_text="Empty: the template's name.")
    script = models.TextField(blank=True, help_text="The call script or meeting agenda (Markdown).")
    default_duration_minutes = models.PositiveIntegerField(
        default=DEFAULT_DURATION_MINUTES, validators=[MinValueValidator(1), MaxValueValidator(60 * 24)]
    )
    follow_up_days = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MaxValueValidator(3650)],
        help_text="Completing an activity of this template schedules a follow-up this many days later. "
        "Empty: none.",
    )
    follow_up_type = models.CharField(
        max_length=10,
        choices=ActivityType.choices,
        blank=True,
        help_text="The follow-up's type. Empty: the same type.",
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class RecordAttachmentBase(ValidatedModel):
    """Something kept on a record of any attachable kind (activities.attachables): a file, a note."""

    record_type = models.CharField(max_length=32, help_text="lead, opportunity, account, contact, activity…")
    record_id = models.BigIntegerField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        abstract = True


def attachment_path(instance, filename: str) -> str:
    # A random folder per file: names never collide, and a path says nothing guessable about a record.
    return f"{settings.CRM_FILES_DIR}/{uuid.uuid4().hex}/{filename}"


class Attachment(RecordAttachmentBase):
    """A file on a record, kept through Django's storage API and downloaded only through a view that
    checks the record's visibility (no public URL)."""

    file = models.FileField(upload_to=attachment_path, max_length=500)
    name = models.CharField(max_length=255, help_text="The file's name as uploaded.")
    size = models.PositiveBigIntegerField()
    mime_type = models.CharField(max_length=100)
    uploaded_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["record_type", "record_id"], name="act_attachment_record")]

    def __str__(self) -> str:
        return self.name


class Note(RecordAttachmentBase):
    """A note on a record: Markdown as written, and the sanitised HTML shown (rendered once, on save)."""

    body = models.TextField(help_text="Markdown; @username mentions notify that user.")
    body_html = models.TextField(editable=False, blank=True)
    author = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["record_type", "record_id"], name="act_note_record")]

    def __str__(self) -> str:
        first = self.body.strip().splitlines()[0] if self.body.strip() else ""
        return first[:80] or f"Note #{self.pk}"


class CalendarFeed(ValidatedModel):
    """A user's secret calendar URL. Only a hash of its token is kept, with the first characters in clear
    to find the row; regenerating replaces both, so the old URL stops working at once."""

    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    token_prefix = models.CharField(max_length=12, unique=True)
    token_hash = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now=True)

    def __str__(self) -> str:
        return f"Calendar feed of {self.user}"


class EmailDirection(models.TextChoices):
    INBOUND = "in", "Received"
    OUTBOUND = "out", "Sent"


class Mailbox(TimeStampedModel):
    """An IMAP mailbox the CRM reads: shared (no owner) or a user's own. Its password is kept encrypted
    (Fernet, keys from CRM_MAILBOX_KEYS); the poller remembers the last UID it read, so a poll with
    nothing new asks the server for one search and fetches nothing."""

    name = models.CharField(max_length=100, unique=True)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.CASCADE,
        null=True,
        blank=True,
        related_name="+",
        help_text="Whose mailbox it is; empty: a shared mailbox (sales@, support@).",
    )
    host = models.CharField("IMAP host", max_length=255)
    port = models.PositiveIntegerField(
        default=993, validators=[MinValueValidator(1), MaxValueValidator(65535)]
    )
    use_ssl = models.BooleanField(
        "SSL/TLS", default=True, help_text="Off: STARTTLS when offered, else plain."
    )
    username = models.CharField(max_length=255)
    password_encrypted = models.TextField(editable=False, blank=True)
    folder = models.CharField(max_length=255, default="INBOX")
    create_leads = models.BooleanField(
        default=False, help_text="A message from an address no contact or lead has creates a lead."
    )
    is_active = models.BooleanField(default=True)
    uid_validity = models.BigIntegerField(null=True, blank=True, editable=False)
    last_uid = models.BigIntegerField(default=0, editable=False)
    last_polled_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.TextField(blank=True, editable=False)
    # A poll holds the mailbox until then: two workers never read the same mailbox at once.
    polling_until = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name"]
        verbose_name_plural = "mailboxes"
        permissions = [("manage_all_mailboxes", "Can manage shared mailboxes and those of others")]

    def __str__(self) -> str:
        return self.name


class EmailMessage(ValidatedModel):
    """One email on the timeline, received (from a mailbox or the BCC address) or sent from a record;
    its Message-ID is unique, so a message read twice is logged once. The activities it is logged as
    carry its subject and text; its attachments are files on the first of them."""

    direction = models.CharField(max_length=3, choices=EmailDirection.choices)
    message_id = models.CharField("Message-ID", max_length=255)
    mailbox = models.ForeignKey(Mailbox, on_delete=models.SET_NULL, null=True, blank=True, related_name="+")
    outgoing = models.OneToOneField(
        "crm.OutgoingEmail", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    # The record a sent message was written from (a deal, an account...): where its activity goes.
    record_type = models.CharField(max_length=32, blank=True)
    record_id = models.BigIntegerField(null=True, blank=True)
    from_address = models.CharField(max_length=320, blank=True)
    to_addresses = models.TextField(blank=True)
    cc_addresses = models.TextField(blank=True)
    subject = models.CharField(max_length=255, blank=True)
    in_reply_to = models.CharField(max_length=255, blank=True)
    references = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    skipped = models.TextField(
        blank=True, help_text="What was left out (an attachment over the limit) and why."
    )
    activities = models.ManyToManyField(Activity, blank=True, related_name="email_messages")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["message_id"],
                name="activities_emailmessage_message_id_unique",
                violation_error_message="This message is logged already.",
            ),
        ]

    def __str__(self) -> str:
        return self.subject or self.message_id


# The customer-service models live in their package; Django finds them through this module.
from activities.service.models import (  # noqa: E402, F401
    Article,
    ArticleCategory,
    ArticleStatus,
    ArticleVersion,
    Holiday,
    SatisfactionSurvey,
    SlaPolicy,
    SlaState,
    Ticket,
    TicketChannel,
    TicketCounter,
    TicketMessage,
    TicketMessageKind,
    TicketStatus,
    TicketType,
    Weekday,
    WorkingCalendar,
    WorkingHours,
)
