"""Lead scoring rules: points an admin assigns to what makes a lead promising."""

from django.core.exceptions import ValidationError
from django.db import models

from .base import TimeStampedModel


class ScoringCriterion(models.TextChoices):
    RATING = "rating", "Rating is"
    PRIORITY = "priority", "Priority is"
    SOURCE = "source", "Source is"
    COMPLETENESS = "completeness", "Contact field filled in"
    RECENT_ACTIVITY = "recent_activity", "Activity logged within (days)"
    EXPECTED_REVENUE = "expected_revenue", "Expected revenue at least"


COMPLETENESS_FIELDS = ("contact_name", "email", "phone", "company_name", "job_title")


class ScoringRule(TimeStampedModel):
    """``points`` when a lead meets ``criterion`` = ``value``.

    rating / priority / source: the lead's value (``hot``, ``urgent``, ``referral``); completeness: a
    field name the lead has filled in (``email``); recent activity: a number of days within which an
    activity was logged on the lead; expected revenue: an amount the lead's expected revenue reaches.
    For the last two only the best matching rule counts (the nearest days, the highest amount).
    A lead's score is the sum of its points, capped at 100.
    """

    criterion = models.CharField(max_length=20, choices=ScoringCriterion.choices)
    value = models.CharField(max_length=40)
    points = models.PositiveSmallIntegerField()
    is_active = models.BooleanField(default=True)

    class Meta:
        ordering = ["criterion", "value"]
        constraints = [
            models.UniqueConstraint(
                fields=["criterion", "value"],
                name="crm_scoringrule_unique",
                violation_error_message="There is already a rule for this criterion and value.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.get_criterion_display()} {self.value}: {self.points} points"

    def clean(self):
        super().clean()
        numeric = {ScoringCriterion.RECENT_ACTIVITY, ScoringCriterion.EXPECTED_REVENUE}
        if self.criterion in numeric:
            try:
                float(self.value)
            except (TypeError, ValueError):
                raise ValidationError({"value": "Enter a number for this criterion."}) from None
        if self.criterion == ScoringCriterion.COMPLETENESS and self.value not in COMPLETENESS_FIELDS:
            raise ValidationError({"value": f"Enter one of: {', '.join(COMPLETENESS_FIELDS)}."})


class ScoreBreakdown(models.Model):
    """Why leads have their score: the rules that gave points, one ``[criterion, value, points]`` line
    each, most points first, as the rules were when the leads were scored.

    Leads with the same reasons share one row, so a lead stores an id instead of the lines: the
    breakdowns of 100,000 imported leads were 38 MB of mostly identical JSON, the largest part of
    each lead row. There are as many rows as distinct breakdowns (hundreds, whatever the number of
    leads); they are never changed or deleted.
    """

    lines = models.JSONField(editable=False)
    # sha256 of the lines as compact JSON: finds an existing breakdown without comparing JSON.
    digest = models.CharField(max_length=64, editable=False)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["digest"],
                name="crm_scorebreakdown_digest_unique",
                violation_error_message="This score breakdown is already stored.",
            )
        ]

    def __str__(self):
        return ", ".join(f"{criterion} {value}: +{points}" for criterion, value, points in self.lines)
