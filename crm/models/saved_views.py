"""Saved views of the admin's lists: a user's named filters, search, sort and columns for one list."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from .base import TimeStampedModel


class ViewSharing(models.TextChoices):
    PRIVATE = "private", "Only me"
    TEAM = "team", "A team"
    EVERYONE = "everyone", "Everyone"


class SavedView(TimeStampedModel):
    """A list's filters (the changelist's query parameters), search, sort and visible columns, saved by
    its owner under a name, perhaps shared with a team or (by a CRM Admin) everyone. Whoever opens it
    still sees only the records they may see."""

    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="saved_views")
    list_key = models.CharField(max_length=100, help_text='The list: its model, as "crm.lead".')
    name = models.CharField(max_length=80)
    filters = models.JSONField(
        default=dict, blank=True, help_text='The list filters: {"status__exact": "open"}.'
    )
    search = models.CharField(max_length=200, blank=True)
    ordering = models.JSONField(
        default=list, blank=True, help_text='Columns to sort by, "-" for descending: ["-revenue", "name"].'
    )
    columns = models.JSONField(
        default=list, blank=True, help_text="The visible columns in order; empty: the list's own."
    )
    sharing = models.CharField(max_length=10, choices=ViewSharing.choices, default=ViewSharing.PRIVATE)
    team = models.ForeignKey(
        "crm.SalesTeam",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        help_text="The team it is shared with (sharing: a team).",
    )
    is_default = models.BooleanField(
        default=False, help_text="Opened when its owner opens the list without filters."
    )

    constraint_error_fields = {
        "saved_view_name_taken": "name",
        "saved_view_default_taken": "is_default",
        "saved_view_team_missing": "team",
    }

    class Meta:
        ordering = ["list_key", "name", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "list_key", "name"],
                name="crm_savedview_name_unique_per_owner_and_list",
                violation_error_code="saved_view_name_taken",
                violation_error_message="You already have a view of this list with this name.",
            ),
            models.UniqueConstraint(
                fields=["owner", "list_key"],
                condition=Q(is_default=True),
                name="crm_savedview_one_default_per_owner_and_list",
                violation_error_code="saved_view_default_taken",
                violation_error_message="Only one default view per list.",
            ),
            models.CheckConstraint(
                condition=~Q(sharing=ViewSharing.TEAM) | Q(team__isnull=False),
                name="crm_savedview_team_when_shared_with_a_team",
                violation_error_code="saved_view_team_missing",
                violation_error_message="Pick the team the view is shared with.",
            ),
        ]
        indexes = [models.Index(fields=["list_key", "sharing"], name="crm_savedview_list_sharing")]

    def __str__(self) -> str:
        return self.name
