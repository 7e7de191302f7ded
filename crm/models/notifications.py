"""Notifications: what a user is told (the admin's bell, email), their choices per kind, their time zone."""

import zoneinfo

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import Q

from .base import ValidatedModel


class NotificationKind(models.TextChoices):
    ASSIGNED = "assigned", "A record is assigned to me"
    STAGE_CHANGED = "stage_changed", "A record of mine changes stage"
    TEAM_DEAL_CLOSED = "team_deal_closed", "A deal in my team is won or lost"
    REMINDER = "reminder", "Activity reminder"
    DIGEST = "digest", "Daily digest of my overdue and today's activities"
    ROTTING = "rotting", "A deal of mine has had no activity for too long"
    WEBHOOK_DISABLED = "webhook_disabled", "A webhook subscription of mine is disabled after failing"
    AUTOMATION = "automation", "An automation rule tells me something"
    MENTION = "mention", "Someone mentions me in a note"
    SLA_WARNING = "sla_warning", "A ticket of mine nears its SLA deadline"
    SLA_BREACHED = "sla_breached", "A ticket in a queue I manage breaches its SLA"


class NotificationChannel(models.TextChoices):
    IN_APP = "in_app", "In the app"
    EMAIL = "email", "By email"
    BOTH = "both", "In the app and by email"
    NONE = "none", "Not at all"


# What a user gets until they choose: the digest is an email; reminders and assignments both.
DEFAULT_CHANNELS = {
    NotificationKind.ASSIGNED: NotificationChannel.BOTH,
    NotificationKind.STAGE_CHANGED: NotificationChannel.IN_APP,
    NotificationKind.TEAM_DEAL_CLOSED: NotificationChannel.IN_APP,
    NotificationKind.REMINDER: NotificationChannel.BOTH,
    NotificationKind.DIGEST: NotificationChannel.EMAIL,
    NotificationKind.ROTTING: NotificationChannel.IN_APP,
    NotificationKind.WEBHOOK_DISABLED: NotificationChannel.BOTH,
    NotificationKind.AUTOMATION: NotificationChannel.IN_APP,
    NotificationKind.MENTION: NotificationChannel.BOTH,
    NotificationKind.SLA_WARNING: NotificationChannel.BOTH,
    NotificationKind.SLA_BREACHED: NotificationChannel.BOTH,
}


def time_zone_validator(value: str) -> None:
    if value and value not in zoneinfo.available_timezones():
        raise ValidationError(
            f"“{value}” is not a time zone (use a name like Europe/Paris).", code="time_zone"
        )


class Notification(ValidatedModel):
    """One thing a user is told. ``event_id`` names what caused it (a domain event's id, or
    ``reminder:<activity>:<time>``...): the same cause never notifies the same user twice, however
    often the relay or a periodic task hands it over."""

    recipient = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    title = models.CharField(max_length=255)
    body = models.TextField(blank=True)
    url = models.CharField(max_length=500, blank=True, help_text="Where the notification leads (a path).")
    record_type = models.CharField(max_length=64, blank=True, help_text="lead, opportunity, activity...")
    record_id = models.BigIntegerField(null=True, blank=True)
    event_id = models.CharField(max_length=100)
    # False when the user wants this kind by email only: the row still deduplicates and records the email.
    in_app = models.BooleanField(default=True)
    email = models.BooleanField(default=False, help_text="To be sent by email.")
    read_at = models.DateTimeField(null=True, blank=True)
    emailed_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ("-id",)
        constraints = [
            models.UniqueConstraint(fields=["recipient", "kind", "event_id"], name="crm_notification_once"),
        ]
        indexes = [
            # The bell: a user's unread in-app notifications.
            models.Index(
                fields=["recipient"], condition=Q(read_at__isnull=True, in_app=True), name="crm_notif_unread"
            ),
            models.Index(fields=["recipient", "-id"], name="crm_notif_recipient_id"),
        ]

    def __str__(self) -> str:
        return self.title


class NotificationPreference(ValidatedModel):
    """How ``user`` wants to hear of ``kind``; without a row, DEFAULT_CHANNELS says."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="+")
    kind = models.CharField(max_length=32, choices=NotificationKind.choices)
    channel = models.CharField(max_length=8, choices=NotificationChannel.choices)

    class Meta:
        ordering = ("user", "kind")
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="crm_notification_preference_once"),
        ]

    def __str__(self) -> str:
        return f"{self.user}: {self.kind} {self.channel}"


class UserProfile(ValidatedModel):
    """What the CRM keeps about a user besides Django's user: their time zone (the daily digest's 08:00)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="crm_profile"
    )
    time_zone = models.CharField(
        max_length=64,
        blank=True,
        validators=[time_zone_validator],
        help_text="Empty: the server's TIME_ZONE.",
    )

    def __str__(self) -> str:
        return f"{self.user}: {self.time_zone or 'default time zone'}"
