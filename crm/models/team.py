"""Sales teams: a manager and the reps they lead. Record visibility depends on them (crm.selectors), so
they live here; the table kept its name from when they were in the sales app, so every row and id stayed."""

from django.conf import settings
from django.db import models
from django.db.models.functions import Lower

from .base import TimeStampedModel


class SalesTeam(TimeStampedModel):
    """A manager and the reps they lead; a manager sees their teams' leads and deals."""

    name = models.CharField(max_length=120)
    description = models.TextField(blank=True)
    manager = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="managed_teams",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="sales_teams")
    is_active = models.BooleanField(default=True)

    constraint_error_fields = {"team_name_taken": "name"}

    class Meta:
        db_table = "sales_salesteam"  # created by the sales app; crm.0018 moved the model, not the table
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="sales_salesteam_name_ci_unique",
                violation_error_code="team_name_taken",
                violation_error_message="A team with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name
