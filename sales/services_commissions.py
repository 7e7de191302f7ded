"""Writes for commissions: plans with their tiers and category rates, assignments, and statements
computed from won deals (draft → approved → locked), with clawbacks of reopened deals."""

from collections import defaultdict
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db import transaction
from django.db.models import F, Q
from django.utils import timezone

from crm.actors import Actor, is_system, person
from crm.services import record_lock, record_save
from sales.commissions import HUNDRED, cents, tiered_commission, tiers_overlap
from sales.currencies import converted
from sales.models import (
    CommissionAssignment,
    CommissionCategoryRate,
    CommissionLine,
    CommissionLineKind,
    CommissionPlan,
    CommissionStatement,
    CommissionTier,
    Opportunity,
    OpportunityLine,
    OpportunityStatus,
    Quota,
    StatementStatus,
    period_bounds,
)

# --- plans ----------------------------------------------------------------------------------------


def _nested_errors(key: str, index: int, exc: ValidationError) -> ValidationError:
    messages = "; ".join(f"{name}: {' '.join(errors)}" for name, errors in exc.message_dict.items())
    return ValidationError({key: f"{key[:-1].replace('_', ' ').capitalize()} {index + 1}: {messages}"})


def _tiers_replace(*, plan: CommissionPlan, tiers: Iterable[Mapping[str, Any]]) -> None:
    wanted = list(tiers)
    bands = [(Decimal(t.get("attainment_from") or 0), t.get("attainment_to")) for t in wanted]
    bands = [(low, None if high is None else Decimal(high)) for low, high in bands]
    clash = tiers_overlap(bands)
    if clash is not None:
        raise ValidationError(
            {
                "tiers": f"Tier {clash + 1} overlaps another tier: bands of attainment "
                "may touch but not overlap."
            }
        )
    plan.tiers.all().delete()
    for index, values in enumerate(wanted):
        try:
            record_save(instance=CommissionTier(plan=plan), data=dict(values), publish=False)
        except ValidationError as exc:
            raise _nested_errors("tiers", index, exc) from exc


def _category_rates_replace(*, plan: CommissionPlan, rates: Iterable[Mapping[str, Any]]) -> None:
    wanted = list(rates)
    seen = set()
    for index, values in enumerate(wanted):
        key = str(values.get("category", "")).strip().casefold()
        if key in seen:
            raise ValidationError(
                {"category_rates": f"Category rate {index + 1}: this category is given twice."}
            )
        seen.add(key)
    plan.category_rates.all().delete()
    for index, values in enumerate(wanted):
        data = {**values, "category": str(values.get("category", "")).strip()}
        try:
            record_save(instance=CommissionCategoryRate(plan=plan), data=data, publish=False)
        except ValidationError as exc:
            raise _nested_errors("category_rates", index, exc) from exc


@transaction.atomic
def commission_plan_create(
    *,
    user: Actor,
    data: Mapping[str, Any],
    tiers: Iterable[Mapping[str, Any]] | None = None,
    category_rates: Iterable[Mapping[str, Any]] | None = None,
) -> CommissionPlan:
    plan = record_save(instance=CommissionPlan(), data=data, user=user)
    if tiers is not None:
        _tiers_replace(plan=plan, tiers=tiers)
    if category_rates is not None:
        _category_rates_replace(plan=plan, rates=category_rates)
    return plan


@transaction.atomic
def commission_plan_update(
    *,
    plan: CommissionPlan,
    user: Actor,
    data: Mapping[str, Any],
    tiers: Iterable[Mapping[str, Any]] | None = None,
    category_rates: Iterable[Mapping[str, Any]] | None = None,
) -> CommissionPlan:
    """Update a plan; ``tiers`` and ``category_rates``, when given, replace its own. Statements already
    computed keep their figures until they are recomputed (approved ones never are)."""
    plan = record_save(instance=record_lock(plan), data=data, user=user)
    if tiers is not None:
        _tiers_replace(plan=plan, tiers=tiers)
    if category_rates is not None:
        _category_rates_replace(plan=plan, rates=category_rates)
    return plan


def commission_tiers_ensure_apart(*, plan: CommissionPlan) -> None:
    """After the admin's inline saved a plan's tiers one by one: refuse (and roll back) an overlap."""
    tiers = list(plan.tiers.order_by("pk"))
    clash = tiers_overlap([(tier.attainment_from, tier.attainment_to) for tier in tiers])
    if clash is not None:
        raise ValidationError({"tiers": f"The tier from {tiers[clash].attainment_from}% overlaps another."})


@transaction.atomic
def commission_tier_create(*, user: Actor, data: Mapping[str, Any]) -> CommissionTier:
    # The admin saves a plan's tier rows one by one, then checks them together (ensure_apart).
    return record_save(instance=CommissionTier(), data=data, user=user)


@transaction.atomic
def commission_tier_update(*, tier: CommissionTier, user: Actor, data: Mapping[str, Any]) -> CommissionTier:
    return record_save(instance=record_lock(tier), data=data, user=user)


@transaction.atomic
def commission_category_rate_create(*, user: Actor, data: Mapping[str, Any]) -> CommissionCategoryRate:
    return record_save(instance=CommissionCategoryRate(), data=data, user=user)


@transaction.atomic
def commission_category_rate_update(
    *, rate: CommissionCategoryRate, user: Actor, data: Mapping[str, Any]
) -> CommissionCategoryRate:
    return record_save(instance=record_lock(rate), data=data, user=user)


@transaction.atomic
def commission_assignment_create(*, user: Actor, data: Mapping[str, Any]) -> CommissionAssignment:
    return record_save(instance=CommissionAssignment(), data=data, user=user)


@transaction.atomic
def commission_assignment_update(
    *, assignment: CommissionAssignment, user: Actor, data: Mapping[str, Any]
) -> CommissionAssignment:
    return record_save(instance=record_lock(assignment), data=data, user=user)


# --- statements -----------------------------------------------------------------------------------


def _ensure_may_manage(user: Actor) -> None:
    if is_system(user) or user.has_perm("sales.change_commissionstatement"):
        return
    raise PermissionDenied("Only those who manage commissions compute, approve and lock statements.")


def _deal_lines(*, statement, deals, category_rates, effective_rate, lines_by_deal) -> list[CommissionLine]:
    lines = []
    for deal in deals:
        amount = deal.company_amount
        factor = amount / deal.amount if deal.amount else Decimal(1)
        special = Decimal(0)
        commission = Decimal(0)
        for category, net in lines_by_deal.get(deal.pk, ()):
            rate = category_rates.get(category.casefold())
            if rate is not None:
                special += net * factor
                commission += net * factor * rate / HUNDRED
        commission += (amount - special) * effective_rate
        lines.append(
            CommissionLine(
                statement=statement,
                kind=CommissionLineKind.DEAL,
                opportunity=deal,
                description=deal.name[:300],
                close_date=deal.close_date,
                amount=cents(amount),
                commission=cents(commission),
            )
        )
    return lines


def _clawbacks(*, statement: CommissionStatement) -> list[CommissionLine]:
    """A negative line for each deal paid in an earlier approved (or locked) statement of the rep that
    is no longer won in that statement's period, and was not clawed back yet."""
    still_paid = Q(
        opportunity__status=OpportunityStatus.WON,
        opportunity__close_date__gte=F("statement__period_start"),
        opportunity__close_date__lte=F("statement__period_end"),
    )
    paid = (
        CommissionLine.objects.filter(
            statement__user=statement.user_id,
            statement__status__in=(StatementStatus.APPROVED, StatementStatus.LOCKED),
            statement__period_start__lt=statement.period_start,
            kind=CommissionLineKind.DEAL,
            clawed_back_by__isnull=True,
            opportunity__isnull=False,
        )
        .exclude(still_paid)
        .order_by("statement__period_start", "pk")
    )
    return [
        CommissionLine(
            statement=statement,
            kind=CommissionLineKind.CLAWBACK,
            opportunity_id=line.opportunity_id,
            description=f"Clawback: {line.description} (reopened after its statement was approved)"[:300],
            close_date=line.close_date,
            amount=-line.amount,
            commission=-line.commission,
            clawback_of=line,
        )
        for line in paid
    ]


@transaction.atomic
def commission_statement_compute(*, user: Actor, rep, period: str, day) -> CommissionStatement:
    """Compute (or recompute, while it is a draft) ``rep``'s statement for the period holding ``day``:
    a line per deal they won with a close date in it (converted into the company currency at the rate
    of its close date) and a clawback line per reopened deal of an earlier approved statement. A fixed
    number of queries whatever the number of deals."""
    _ensure_may_manage(user)
    start, end = period_bounds(period, day)
    assignment = (
        CommissionAssignment.objects.select_related("plan")
        .filter(user=rep, period=period, period_start=start)
        .first()
    )
    if assignment is None:
        raise ValidationError({"user_id": f"{rep} has no commission plan for the {period} from {start}."})
    plan = assignment.plan
    statement = (
        CommissionStatement.objects.select_for_update()
        .filter(user=rep, period=period, period_start=start)
        .first()
    )
    if statement is not None and statement.status != StatementStatus.DRAFT:
        raise ValidationError({"status": f"The statement is {statement.status}: it is not computed again."})
    deals = list(
        Opportunity.objects.filter(
            owner=rep, status=OpportunityStatus.WON, close_date__gte=start, close_date__lte=end
        )
        .annotate(company_amount=converted())
        .order_by("close_date", "pk")
    )
    unconverted = [deal.name for deal in deals if deal.company_amount is None]
    if unconverted:
        raise ValidationError(
            {"user_id": f"No exchange rate at the close date of: {', '.join(unconverted)}."}
        )
    tiers = list(plan.tiers.all())
    category_rates = {rate.category.casefold(): rate.rate for rate in plan.category_rates.all()}
    lines_by_deal: dict[int, list] = defaultdict(list)
    if category_rates and deals:
        for deal_id, category, net in OpportunityLine.objects.filter(
            opportunity__in=[deal.pk for deal in deals], product__isnull=False
        ).values_list("opportunity_id", "product__category", "net_amount"):
            lines_by_deal[deal_id].append((category, net))
    won = sum((deal.company_amount for deal in deals), Decimal(0))
    quota = (
        Quota.objects.filter(user=rep, period=period, period_start=start, target_amount__isnull=False)
        .values_list("target_amount", flat=True)
        .first()
    )
    if tiers and quota:
        effective_rate = tiered_commission(tiers, target=quota, won=won) / won if won else Decimal(0)
    else:
        effective_rate = plan.base_rate / HUNDRED
    now = timezone.now()
    if statement is None:
        statement = CommissionStatement(user=rep, period=period, period_start=start)
    else:
        statement.lines.all().delete()
    statement.plan = plan
    statement.period_end = end
    statement.won_amount = cents(won)
    statement.quota_target = quota
    statement.attainment = cents(won * HUNDRED / quota) if quota else None
    statement.computed_at = now
    statement.save()
    lines = _deal_lines(
        statement=statement,
        deals=deals,
        category_rates=category_rates,
        effective_rate=effective_rate,
        lines_by_deal=lines_by_deal,
    )
    lines += _clawbacks(statement=statement)
    CommissionLine.objects.bulk_create(lines)
    statement.total = sum((line.commission for line in lines), Decimal(0))
    statement.save(update_fields=["total"])
    return statement


def _transition(
    statement: CommissionStatement, *, user: Actor, source: str, target: str
) -> CommissionStatement:
    _ensure_may_manage(user)
    statement = record_lock(statement)
    if statement.status != source:
        raise ValidationError(
            {"status": f"Only a {source} statement can be {target}; this one is {statement.status}."}
        )
    statement.status = target
    now = timezone.now()
    if target == StatementStatus.APPROVED:
        statement.approved_at, statement.approved_by = now, person(user)
    else:
        statement.locked_at = now
    statement.save(update_fields=["status", "approved_at", "approved_by", "locked_at", "updated_at"])
    return statement


@transaction.atomic
def commission_statement_approve(*, statement: CommissionStatement, user: Actor) -> CommissionStatement:
    """Draft → approved: its figures are frozen; a deal of it reopened later is clawed back."""
    return _transition(statement, user=user, source=StatementStatus.DRAFT, target=StatementStatus.APPROVED)


@transaction.atomic
def commission_statement_lock(*, statement: CommissionStatement, user: Actor) -> CommissionStatement:
    """Approved → locked: paid by payroll."""
    return _transition(statement, user=user, source=StatementStatus.APPROVED, target=StatementStatus.LOCKED)


@transaction.atomic
def commission_statement_delete(*, statement: CommissionStatement, user: Actor) -> None:
    """Only a draft is deleted (an approved statement is the record of what was paid)."""
    _ensure_may_manage(user)
    statement = record_lock(statement)
    if statement.status != StatementStatus.DRAFT:
        raise ValidationError({"status": f"The statement is {statement.status}: it is kept."})
    statement.lines.all().delete()
    statement.delete()
