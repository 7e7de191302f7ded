"""Reads of commissions: who sees which statements, the tier arithmetic (a pure function), and the
payroll export.

A plan's tiers are marginal bands of quota attainment: with a quota of 100,000 and tiers "5 % from 0 to
100 %" and "8 % from 100 %", a rep who won 150,000 earns 100,000 × 5 % + 50,000 × 8 % = 9,000, an
effective 6 % paid on each deal's amount. Lines of a product whose category has its own rate earn that
rate on their net amount instead (they still count towards attainment). Without tiers, or without a
quota for the period, the plan's base rate applies.
"""

import itertools
from decimal import ROUND_HALF_UP, Decimal

from django.db.models import QuerySet

from crm.actors import Actor
from crm.importing.exporting import _to_csv, _to_xlsx
from crm.selectors import user_managed_ids, user_sees_everything
from sales.models import CommissionPlan, CommissionStatement, CommissionTier

CENT = Decimal("0.01")
HUNDRED = Decimal(100)


def cents(value: Decimal) -> Decimal:
    return value.quantize(CENT, rounding=ROUND_HALF_UP)


def tiered_commission(tiers: list[CommissionTier], *, target: Decimal, won: Decimal) -> Decimal:
    """The commission on ``won`` under ``tiers`` for a quota of ``target`` (unrounded)."""
    total = Decimal(0)
    for tier in tiers:
        low = target * tier.attainment_from / HUNDRED
        high = None if tier.attainment_to is None else target * tier.attainment_to / HUNDRED
        part = (won if high is None else min(won, high)) - low
        if part > 0:
            total += part * tier.rate / HUNDRED
    return total


def tiers_overlap(bands: list[tuple[Decimal, Decimal | None]]) -> int | None:
    """The index (in ``bands``' order) of a band that overlaps another one, or None."""
    ordered = sorted(enumerate(bands), key=lambda item: item[1][0])
    for (_, (_, high)), (index, (low, _)) in itertools.pairwise(ordered):
        if high is None or low < high:
            return index
    return None


def commission_plan_list(*, user: Actor, filters=None) -> QuerySet[CommissionPlan]:
    """Plans are configuration every member of staff reads (a rep reads how they are paid)."""
    if not user.is_authenticated or not user.is_active:
        return CommissionPlan.objects.none()
    return CommissionPlan.objects.prefetch_related("tiers", "category_rates")


def commission_statement_visible_to(user: Actor) -> QuerySet[CommissionStatement]:
    """Everything for a CRM Admin; else one's own statements and those of the teams one manages."""
    if user_sees_everything(user):
        return CommissionStatement.objects.all()
    if not user.is_authenticated or not user.is_active:
        return CommissionStatement.objects.none()
    return CommissionStatement.objects.filter(user__in=user_managed_ids(user))


def commission_statement_list(*, user: Actor, filters=None) -> QuerySet[CommissionStatement]:
    from crm.filters import filter_queryset
    from sales.filters import CommissionStatementFilter

    queryset = commission_statement_visible_to(user).select_related("user", "plan", "approved_by")
    return filter_queryset(CommissionStatementFilter, queryset, filters)


EXPORT_COLUMNS = (
    "username",
    "email",
    "plan",
    "period",
    "period_start",
    "period_end",
    "status",
    "won_amount",
    "quota_target",
    "attainment",
    "deals",
    "clawbacks",
    "total",
    "currency",
)


def commission_statements_export(*, statements: QuerySet[CommissionStatement], fmt: str) -> tuple[bytes, str]:
    """The statements as a payroll file (one row each): ``(content, content type)``."""
    from django.db.models import Count, Q

    from sales.models import CommissionLineKind, company_currency

    rows = (
        (
            s.user.get_username(),
            s.user.email,
            s.plan.name,
            s.period,
            s.period_start,
            s.period_end,
            s.status,
            s.won_amount,
            s.quota_target,
            s.attainment,
            s.deal_count,
            s.clawback_count,
            s.total,
            company_currency(),
        )
        for s in statements.select_related("user", "plan").annotate(
            deal_count=Count("lines", filter=Q(lines__kind=CommissionLineKind.DEAL)),
            clawback_count=Count("lines", filter=Q(lines__kind=CommissionLineKind.CLAWBACK)),
        )
    )
    if fmt == "xlsx":
        content, _ = _to_xlsx(EXPORT_COLUMNS, rows, "Commissions")
        return content, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    content, _ = _to_csv(EXPORT_COLUMNS, rows)
    return content, "text/csv; charset=utf-8"
