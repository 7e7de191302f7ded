"""Commissions: plans (a rate on won amounts, tiers by quota attainment, rates per product category),
their assignment to reps per period, and the statements computed from won deals, with clawbacks."""

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.db.models import Q

from crm.models import TimeStampedModel
from sales.models import Opportunity, QuotaPeriod

PERCENT = {"max_digits": 6, "decimal_places": 3, "validators": [MinValueValidator(0), MaxValueValidator(100)]}


def _percent_check(prefix: str, field: str) -> models.CheckConstraint:
    return models.CheckConstraint(
        condition=Q(**{f"{field}__gte": 0, f"{field}__lte": 100}),
        name=f"{prefix}_{field}_0_100",
        violation_error_code=f"{field}_range",
        violation_error_message="A percentage between 0 and 100.",
    )


class CommissionPlan(TimeStampedModel):
    """What a rep earns on the deals they win: ``base_rate`` % of the won amount, or, when the plan has
    tiers and the rep a quota for the period, each tier's rate on the part of the won amount that falls
    in its band of attainment (5 % up to 100 % of quota, 8 % above). Lines of a product whose category
    has its own rate earn that rate instead."""

    name = models.CharField(max_length=120, unique=True)
    base_rate = models.DecimalField(
        **PERCENT, default=0, help_text="Percent of the won amount, without tiers or without a quota."
    )
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    constraint_error_fields = {**TimeStampedModel.constraint_error_fields, "base_rate_range": "base_rate"}

    class Meta:
        ordering = ["name", "id"]
        constraints = [_percent_check("sales_commissionplan", "base_rate")]

    def __str__(self) -> str:
        return self.name


class CommissionTier(TimeStampedModel):
    """``rate`` % on the won amount between ``attainment_from`` % and ``attainment_to`` % of the quota
    (no upper bound when empty). A plan's tiers never overlap."""

    plan = models.ForeignKey(CommissionPlan, on_delete=models.CASCADE, related_name="tiers")
    attainment_from = models.DecimalField(
        max_digits=7, decimal_places=2, default=0, validators=[MinValueValidator(0)], help_text="% of quota."
    )
    attainment_to = models.DecimalField(
        max_digits=7, decimal_places=2, null=True, blank=True, help_text="% of quota; empty: no limit."
    )
    rate = models.DecimalField(**PERCENT, help_text="Percent of the won amount in this band.")

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "tier_band": "attainment_to",
        "rate_range": "rate",
    }

    class Meta:
        ordering = ["plan", "attainment_from", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(attainment_to__isnull=True) | Q(attainment_to__gt=models.F("attainment_from")),
                name="sales_commissiontier_band",
                violation_error_code="tier_band",
                violation_error_message="A tier ends above where it starts.",
            ),
            _percent_check("sales_commissiontier", "rate"),
        ]

    def __str__(self) -> str:
        upper = f"{self.attainment_to}%" if self.attainment_to is not None else "∞"
        return f"{self.rate}% from {self.attainment_from}% to {upper}"


class CommissionCategoryRate(TimeStampedModel):
    """Lines of a product of ``category`` earn ``rate`` % of their net amount, whatever the tiers."""

    plan = models.ForeignKey(CommissionPlan, on_delete=models.CASCADE, related_name="category_rates")
    category = models.CharField(max_length=100, help_text="A product category, as written on products.")
    rate = models.DecimalField(**PERCENT)

    constraint_error_fields = {**TimeStampedModel.constraint_error_fields, "rate_range": "rate"}

    class Meta:
        ordering = ["plan", "category"]
        constraints = [
            models.UniqueConstraint(
                fields=["plan", "category"],
                name="sales_commissioncategoryrate_once",
                violation_error_message="This category already has a rate in this plan.",
            ),
            _percent_check("sales_commissioncategoryrate", "rate"),
        ]

    def __str__(self) -> str:
        return f"{self.category}: {self.rate}%"


class CommissionAssignment(TimeStampedModel):
    """A rep is paid by ``plan`` for one month, quarter or year."""

    plan = models.ForeignKey(CommissionPlan, on_delete=models.PROTECT, related_name="assignments")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="commission_plans"
    )
    period = models.CharField(max_length=10, choices=QuotaPeriod.choices, default=QuotaPeriod.QUARTER)
    period_start = models.DateField(help_text="Any day of the period; kept as its first day.")
    period_end = models.DateField(editable=False)

    constraint_error_fields = {**TimeStampedModel.constraint_error_fields, "assignment_taken": "period_start"}

    class Meta:
        ordering = ["-period_start", "user", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "period", "period_start"],
                name="sales_commissionassignment_once",
                violation_error_code="assignment_taken",
                violation_error_message="This user already has a plan for this period.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.plan} · {self.get_period_display()} from {self.period_start}"

    def clean_fields(self, exclude=None):
        import datetime

        from sales.models import period_bounds

        if isinstance(self.period_start, datetime.date) and self.period in QuotaPeriod.values:
            self.period_start, self.period_end = period_bounds(self.period, self.period_start)
        super().clean_fields(exclude=exclude)


class StatementStatus(models.TextChoices):
    DRAFT = "draft", "Draft"
    APPROVED = "approved", "Approved"
    LOCKED = "locked", "Locked"


class CommissionStatement(TimeStampedModel):
    """What a rep earned in a period: a line per deal won (and a negative one per deal of an approved
    statement that was reopened since). Recomputed while draft; frozen once approved; locked once paid."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="commission_statements"
    )
    plan = models.ForeignKey(CommissionPlan, on_delete=models.PROTECT, related_name="statements")
    period = models.CharField(max_length=10, choices=QuotaPeriod.choices)
    period_start = models.DateField()
    period_end = models.DateField()
    status = models.CharField(max_length=10, choices=StatementStatus.choices, default=StatementStatus.DRAFT)
    won_amount = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    quota_target = models.DecimalField(max_digits=16, decimal_places=2, null=True, blank=True)
    attainment = models.DecimalField(max_digits=9, decimal_places=2, null=True, blank=True, help_text="%")
    total = models.DecimalField(max_digits=16, decimal_places=2, default=0)
    computed_at = models.DateTimeField()
    approved_at = models.DateTimeField(null=True, blank=True)
    approved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    locked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-period_start", "user", "id"]
        constraints = [
            models.UniqueConstraint(
                fields=["user", "period", "period_start"],
                name="sales_commissionstatement_once",
                violation_error_message="This user already has a statement for this period.",
            )
        ]

    def __str__(self) -> str:
        return f"{self.user} · {self.get_period_display()} from {self.period_start} · {self.total}"


class CommissionLineKind(models.TextChoices):
    DEAL = "deal", "Deal won"
    CLAWBACK = "clawback", "Clawback"


class CommissionLine(models.Model):
    statement = models.ForeignKey(CommissionStatement, on_delete=models.CASCADE, related_name="lines")
    kind = models.CharField(
        max_length=10, choices=CommissionLineKind.choices, default=CommissionLineKind.DEAL
    )
    opportunity = models.ForeignKey(
        Opportunity, on_delete=models.SET_NULL, null=True, blank=True, related_name="commission_lines"
    )
    description = models.CharField(max_length=300)
    close_date = models.DateField(null=True, blank=True)
    amount = models.DecimalField(
        max_digits=16, decimal_places=2, help_text="The deal's won amount in the company currency."
    )
    commission = models.DecimalField(max_digits=16, decimal_places=2)
    # The deal line of an approved statement this line claws back.
    clawback_of = models.OneToOneField(
        "self", on_delete=models.PROTECT, null=True, blank=True, related_name="clawed_back_by"
    )

    class Meta:
        ordering = ["statement", "kind", "close_date", "id"]

    def __str__(self) -> str:
        return f"{self.description}: {self.commission}"
