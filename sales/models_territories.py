"""Territories: a tree of sales regions whose rules on account fields place each account in one of them,
the placements, and the background runs that re-apply the rules and report what moved."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from crm.models import Account, Industry, SalesTeam, TimeStampedModel


class Territory(TimeStampedModel):
    """A sales region. Its members (users, and a team's members and manager) own its accounts' business;
    an account goes to the deepest active territory one of whose rules it matches."""

    name = models.CharField(max_length=120, unique=True)
    parent = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="children",
        help_text="The wider territory this one is part of (EMEA → DACH).",
    )
    sequence = models.PositiveIntegerField(
        default=0, help_text="Between two territories of the same depth that match, the lower wins."
    )
    team = models.ForeignKey(
        SalesTeam,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="territories",
        help_text="Its members and manager are members of the territory.",
    )
    members = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="territories")
    description = models.TextField(blank=True)
    is_active = models.BooleanField(default=True)

    class Meta:
        verbose_name_plural = "territories"
        ordering = ["sequence", "name", "id"]

    def __str__(self) -> str:
        return self.name


class TerritoryRule(TimeStampedModel):
    """Accounts matching every criterion given here belong to the territory (an empty one matches all).
    Text criteria ignore case and surrounding spaces; the employee range includes its bounds."""

    territory = models.ForeignKey(Territory, on_delete=models.CASCADE, related_name="rules")
    country = models.CharField(max_length=120, blank=True, help_text="Billing country, as written.")
    state = models.CharField(max_length=120, blank=True, help_text="Billing state or region.")
    postal_code_prefix = models.CharField(
        max_length=20, blank=True, help_text="The billing postal code starts with it (75 for Paris)."
    )
    industry = models.CharField(max_length=20, choices=Industry.choices, blank=True)
    employees_min = models.PositiveIntegerField(null=True, blank=True)
    employees_max = models.PositiveIntegerField(null=True, blank=True)

    constraint_error_fields = {
        **TimeStampedModel.constraint_error_fields,
        "employees_range": "employees_max",
        "rule_empty": "country",
    }

    class Meta:
        ordering = ["territory", "id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(employees_min__isnull=True)
                | Q(employees_max__isnull=True)
                | Q(employees_min__lte=models.F("employees_max")),
                name="sales_territoryrule_employees_range",
                violation_error_code="employees_range",
                violation_error_message="The largest number of employees is below the smallest.",
            ),
            models.CheckConstraint(
                condition=~Q(country="", state="", postal_code_prefix="", industry="")
                | Q(employees_min__isnull=False)
                | Q(employees_max__isnull=False),
                name="sales_territoryrule_not_empty",
                violation_error_code="rule_empty",
                violation_error_message="Give at least one criterion: a rule without one matches "
                "every account.",
            ),
        ]

    def __str__(self) -> str:
        parts = [
            f"{label} {value}"
            for label, value in (
                ("country", self.country),
                ("state", self.state),
                ("postal code", self.postal_code_prefix and f"{self.postal_code_prefix}…"),
                ("industry", self.get_industry_display() if self.industry else ""),
            )
            if value
        ]
        if self.employees_min is not None or self.employees_max is not None:
            parts.append(f"employees {self.employees_min or 0}–{self.employees_max or '∞'}")
        return f"{self.territory}: " + ", ".join(parts)


class AccountTerritory(models.Model):
    """Where the rules placed an account (none when no rule matches it)."""

    account = models.OneToOneField(
        Account, on_delete=models.CASCADE, primary_key=True, related_name="territory_placement"
    )
    territory = models.ForeignKey(Territory, on_delete=models.CASCADE, related_name="placements")
    rule = models.ForeignKey(
        TerritoryRule, on_delete=models.SET_NULL, null=True, blank=True, related_name="placements"
    )
    placed_at = models.DateTimeField()

    class Meta:
        verbose_name = "account placement"
        indexes = [models.Index(fields=["territory", "account"], name="sales_accountterritory_terr")]

    def __str__(self) -> str:
        return f"{self.account_id} in {self.territory_id}"


class TerritoryRunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"


class TerritoryRun(models.Model):
    """One re-application of the rules to every account, by a worker: what moved, from where to where."""

    started_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(
        max_length=10, choices=TerritoryRunStatus.choices, default=TerritoryRunStatus.QUEUED
    )
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    accounts = models.PositiveIntegerField(default=0, help_text="Accounts the rules were applied to.")
    moved = models.PositiveIntegerField(default=0, help_text="Accounts whose territory changed.")
    # [{"account_id", "account", "from", "to"}] (territory names, null for none), the first MOVES_KEPT.
    moves = models.JSONField(default=list, blank=True)
    error = models.TextField(blank=True)

    MOVES_KEPT = 1000

    class Meta:
        ordering = ["-created_at", "-id"]

    def __str__(self) -> str:
        return f"Territory run {self.pk} ({self.get_status_display()})"
