"""Email templates and the emails sent from them (one row per message: queued, sent, failed...)."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.db.models.functions import Lower

from .account import Contact
from .base import TimeStampedModel, ValidatedModel
from .lead import Lead


class EmailTemplate(TimeStampedModel):
    """A message with placeholders (``{{ lead.name }}``, ``{{ contact.account.name }}``) filled from
    a record when it is sent. The HTML body is sanitized when saved and autoescaped when rendered;
    the plain-text part is rendered from ``body_text``, or from the HTML without its tags."""

    name = models.CharField(max_length=200)
    subject = models.CharField(max_length=255)
    body_html = models.TextField("HTML body", blank=True)
    body_text = models.TextField(
        "plain-text body", blank=True, help_text="Empty: the HTML body without its tags."
    )
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ("name", "id")
        verbose_name = "email template"
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_emailtemplate_name_ci_unique",
                violation_error_message="An email template of this name exists already.",
            ),
            models.CheckConstraint(
                condition=~Q(body_html="") | ~Q(body_text=""),
                name="crm_emailtemplate_has_body",
                violation_error_message="Give the message an HTML body or a plain-text body.",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class OutgoingEmailStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    SENDING = "sending", "Sending"
    SENT = "sent", "Sent"
    FAILED = "failed", "Failed"
    SUPPRESSED = "suppressed", "Not sent: the address opted out"


class OutgoingEmail(ValidatedModel):
    """One rendered message to one record, written in the transaction that decides to send it and
    sent after it commits (claimed first, so it goes out once however many senders try)."""

    template = models.ForeignKey(EmailTemplate, null=True, blank=True, on_delete=models.SET_NULL)
    lead = models.ForeignKey(Lead, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    contact = models.ForeignKey(Contact, null=True, blank=True, on_delete=models.CASCADE, related_name="+")
    enrollment = models.ForeignKey(
        "crm.SequenceEnrollment", null=True, blank=True, on_delete=models.SET_NULL, related_name="emails"
    )
    to = models.EmailField()
    subject = models.CharField(max_length=255)
    body_html = models.TextField(blank=True)
    body_text = models.TextField(blank=True)
    status = models.CharField(
        max_length=12, choices=OutgoingEmailStatus.choices, default=OutgoingEmailStatus.QUEUED
    )
    claim = models.CharField(max_length=36, blank=True, editable=False)
    claimed_at = models.DateTimeField(
        null=True, blank=True, editable=False, help_text="When a sender took it (status “sending”)."
    )
    error = models.TextField(blank=True)
    headers = models.JSONField(default=dict, blank=True, help_text="Extra headers (List-Unsubscribe...).")
    sent_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    # Given when the message is written, so the activity that logs it and the replies that cite it
    # (In-Reply-To, References) know it before it is sent.
    message_id = models.CharField("Message-ID", max_length=255, blank=True, editable=False)
    calendar = models.TextField(
        blank=True,
        editable=False,
        help_text="An iCalendar invitation (METHOD:REQUEST) sent with the message as invite.ics.",
    )

    class Meta:
        ordering = ("-id",)
        verbose_name = "sent email"
        indexes = [
            # The safety net looks for messages still queued (a sender that died before sending).
            models.Index(fields=["created_at"], condition=Q(status="queued"), name="crm_outemail_queued_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(lead__isnull=True) | Q(contact__isnull=True),
                name="crm_outemail_one_record",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.subject} → {self.to}"
