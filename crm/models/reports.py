"""Saved reports of the report builder: a definition, who it is shared with, and its e-mail schedule."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .base import TimeStampedModel


class ReportSharing(models.TextChoices):
    PRIVATE = "private", "Only me"
    TEAM = "team", "A team"
    EVERYONE = "everyone", "Everyone"


class ReportDisplay(models.TextChoices):
    TABLE = "table", "Table"
    PIVOT = "pivot", "Pivot"
    CHART = "chart", "Chart"


class ReportSchedule(models.TextChoices):
    NONE = "", "Never"
    DAILY = "daily", "Daily"
    WEEKLY = "weekly", "Weekly"
    MONTHLY = "monthly", "Monthly"


class SavedReport(TimeStampedModel):
    """A builder definition. Whoever runs it sees only the records and fields they may see: a report
    shared with a team counts, for each reader, what that reader sees."""

    name = models.CharField(max_length=120)
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_reports"
    )
    record_type = models.CharField(max_length=40, help_text="leads, opportunities, activities, accounts…")
    group_by = models.JSONField(
        default=list, blank=True, help_text='Up to two: ["stage", "close_date:month"].'
    )
    measures = models.JSONField(default=list, blank=True, help_text='["count", "sum:amount"]; empty: count.')
    filters = models.JSONField(default=dict, blank=True, help_text='The list filters: {"status": "open"}.')
    display = models.CharField(max_length=10, choices=ReportDisplay.choices, default=ReportDisplay.TABLE)
    sharing = models.CharField(max_length=10, choices=ReportSharing.choices, default=ReportSharing.PRIVATE)
    team = models.ForeignKey(
        "crm.SalesTeam",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The team it is shared with (sharing: a team).",
    )
    schedule = models.CharField(
        max_length=10,
        choices=ReportSchedule.choices,
        default=ReportSchedule.NONE,
        blank=True,
        help_text="E-mailed to its owner (as a CSV file, counting what the owner sees) this often.",
    )
    last_sent_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.CheckConstraint(
                condition=~Q(sharing=ReportSharing.TEAM) | Q(team__isnull=False),
                name="crm_savedreport_team_when_shared_with_a_team",
                violation_error_message="Pick the team the report is shared with.",
            )
        ]
        indexes = [models.Index(fields=["schedule", "last_sent_at"], name="crm_savedreport_schedule")]

    def __str__(self) -> str:
        return self.name
