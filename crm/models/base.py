"""Building blocks shared by every CRM model: timestamps, choice lists, constraint error mapping."""

from django.core.exceptions import NON_FIELD_ERRORS, ValidationError
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q
from simple_history.models import HistoricalRecords

PROBABILITY_VALIDATORS = [MinValueValidator(0), MaxValueValidator(100)]


class Priority(models.TextChoices):
    LOW = "low", "Low"
    MEDIUM = "medium", "Medium"
    HIGH = "high", "High"
    URGENT = "urgent", "Urgent"


class Rating(models.TextChoices):
    COLD = "cold", "Cold"
    WARM = "warm", "Warm"
    HOT = "hot", "Hot"


def probability_constraint(prefix: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(probability__gte=0) & Q(probability__lte=100),
        name=f"{prefix}_probability_0_100",
        violation_error_code="probability_range",
        violation_error_message="Probability must be between 0 and 100.",
    )


def non_negative_constraint(prefix: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__isnull": True}) | Q(**{f"{field}__gte": 0}),
        name=f"{prefix}_{field}_not_negative",
        violation_error_code=f"{field}_negative",
        violation_error_message="This amount cannot be negative.",
    )


class TimeStampedModel(models.Model):
    """Adds created_at / updated_at, and files constraint violations under the field they concern.

    Django reports a violated CheckConstraint or expression UniqueConstraint as a non-field error;
    a form or an API client needs it next to the field. ``constraint_error_fields`` maps a
    constraint's ``violation_error_code`` to that field.
    """

    created_at = models.DateTimeField(auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(auto_now=True)

    constraint_error_fields: dict[str, str] = {
        "probability_range": "probability",
        "expected_revenue_negative": "expected_revenue",
        "amount_negative": "amount",
        "annual_revenue_negative": "annual_revenue",
    }

    class Meta:
        abstract = True

    def validate_constraints(self, exclude=None):
        try:
            super().validate_constraints(exclude=exclude)
        except ValidationError as exc:
            errors: dict[str, list[ValidationError]] = {}
            for field, field_errors in exc.error_dict.items():
                for error in field_errors:
                    target = field
                    if field == NON_FIELD_ERRORS:
                        target = self.constraint_error_fields.get(error.code, field)
                    errors.setdefault(target, []).append(error)
            raise ValidationError(errors) from exc


class _AllFieldsBut:
    """A container of every field name except ``kept``: for HistoricalRecords(no_db_index=...)."""

    def __init__(self, *kept: str):
        self.kept = kept

    def __contains__(self, name) -> bool:
        return name not in self.kept


def audit_history(*, derived_fields: tuple[str, ...] = ()) -> HistoricalRecords:
    """The audit trail of a model (django-simple-history). Its table is written for every change and
    read per record, newest first: indexed on the record's id and the version's date only, not on
    every indexed field of the model, so a bulk import's history rows stay cheap to write.

    ``derived_fields`` (a lead's computed score) are left out: the trail records what people changed,
    and a derived value follows from those changes."""
    return HistoricalRecords(no_db_index=_AllFieldsBut("id"), excluded_fields=list(derived_fields))
