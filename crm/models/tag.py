"""Tags and lost reasons: small vocabularies that records refer to."""

from django.db import models
from django.db.models.functions import Lower

from .base import TimeStampedModel
from .pipeline import color_validator


class Tag(TimeStampedModel):
    name = models.CharField(max_length=60)
    color = models.CharField(max_length=7, default="#6c757d", validators=[color_validator])

    constraint_error_fields = {"tag_name_taken": "name"}

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_tag_name_ci_unique",
                violation_error_code="tag_name_taken",
                violation_error_message="A tag with this name already exists (names ignore case).",
            ),
        ]

    def __str__(self) -> str:
        return self.name


class LostReason(TimeStampedModel):
    name = models.CharField(max_length=120)
    is_active = models.BooleanField(default=True)

    constraint_error_fields = {"lost_reason_name_taken": "name"}

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(
                Lower("name"),
                name="crm_lostreason_name_ci_unique",
                violation_error_code="lost_reason_name_taken",
                violation_error_message="A lost reason with this name already exists.",
            ),
        ]

    def __str__(self) -> str:
        return self.name
