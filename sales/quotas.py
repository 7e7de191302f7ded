"""Reads of quotas: who sees and sets which, the targets of a period, and attainment.

Attainment counts the deals won by the quota's holder (a user, or every member of a team) with a close
date in the quota's period, their amounts converted into the company currency at the rate in force on
each close date. A team's figure is a total: a rep reads their team's attainment, not its deals.
"""

import datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db import router
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Sum, Value
from django.db.models.functions import Coalesce
from django.utils import timezone

from crm.actors import Actor
from crm.filters import filter_queryset
from crm.models import SalesTeam
from crm.prepared import prepared
from crm.selectors import MONEY, sales_team_visible_to, user_managed_ids, user_sees_everything
from sales.currencies import converted
from sales.filters import QuotaFilter
from sales.models import Opportunity, OpportunityStatus, Quota, company_currency, period_bounds

CENT = Decimal("0.01")


def user_is_person(user: Actor) -> bool:
    return bool(getattr(user, "is_authenticated", False) and getattr(user, "pk", None))


def quota_visible_to(user: Actor) -> QuerySet[Quota]:
    """Everything for a CRM Admin; else one's own quotas, those of the members of the teams one manages,
    and those of the teams one is in or manages."""
    if user_sees_everything(user):
        return Quota.objects.all()
    if not user_is_person(user) or not user.is_active:
        return Quota.objects.none()
    return Quota.objects.filter(
        Q(user__in=user_managed_ids(user)) | Q(team__in=sales_team_visible_to(user).values("pk"))
    )


def quota_editable_by(user: Actor) -> dict[str, QuerySet]:
    """The users and teams whose quotas ``user`` may set: anyone's for a CRM Admin; the members of
    the (active) teams a manager manages and those teams; nobody's for a rep."""
    users = get_user_model().objects.all()
    if user_sees_everything(user):
        return {"users": users, "teams": SalesTeam.objects.all()}
    if not user_is_person(user):
        return {"users": users.none(), "teams": SalesTeam.objects.none()}
    managed = SalesTeam.objects.filter(manager=user, is_active=True)
    return {"users": users.filter(sales_teams__in=managed).distinct(), "teams": managed}


def quota_list(*, user: Actor, filters=None) -> QuerySet[Quota]:
    queryset = quota_visible_to(user).select_related("user", "team")
    return filter_queryset(QuotaFilter, queryset, filters)


def _won_in_period() -> QuerySet:
    """The won deals of the outer quota's holder closing in its period (a correlated subquery)."""
    team_members = SalesTeam.members.through.objects.filter(salesteam=OuterRef(OuterRef("team"))).values(
        "user"
    )
    return Opportunity.objects.filter(
        Q(owner=OuterRef("user")) | Q(owner__in=team_members),
        status=OpportunityStatus.WON,
        close_date__gte=OuterRef("period_start"),
        close_date__lte=OuterRef("period_end"),
    ).order_by()


def with_attainment(queryset: QuerySet[Quota]) -> QuerySet[Quota]:
    """``queryset`` with ``won_amount`` and ``won_count``: one query whatever the number of quotas."""
    # Every row is won: grouping by status makes one group, the aggregate of the whole subquery. Both
    # read only what the won deals' covering index holds (sales_opp_status_close_inc): a
    # count of ids went through the close-date index and the table instead (a rep's quota at 5M deals:
    # 94 ms against 4).
    won = _won_in_period().values("status")
    return queryset.annotate(
        won_amount=Coalesce(
            Subquery(won.annotate(total=Sum(converted())).values("total"), output_field=MONEY),
            Value(Decimal("0"), output_field=MONEY),
        ),
        won_count=Coalesce(
            Subquery(won.annotate(n=Count("*")).values("n"), output_field=IntegerField()), Value(0)
        ),
    )


def _percent(part, whole) -> float | None:
    if whole is None:
        return None
    if not whole:
        return 100.0 if part else 0.0
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP))


def attainment_row(quota: Quota) -> dict[str, Any]:
    """A quota annotated by ``with_attainment`` as the API and the pages show it."""
    won_amount = (quota.won_amount or Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)
    return {
        "quota_id": quota.pk,
        "user_id": quota.user_id,
        "username": quota.user.get_username() if quota.user_id else None,
        "team_id": quota.team_id,
        "team_name": quota.team.name if quota.team_id else None,
        "period": quota.period,
        "period_start": quota.period_start,
        "period_end": quota.period_end,
        "target_amount": quota.target_amount,
        "target_count": quota.target_count,
        "won_amount": won_amount,
        "won_count": quota.won_count,
        "amount_attainment": _percent(won_amount, quota.target_amount),
        "count_attainment": _percent(quota.won_count, quota.target_count),
    }


def quota_attainment(*, user: Actor, day: datetime.date | None = None, filters=None) -> list[dict[str, Any]]:
    """The attainment of every quota ``user`` sees whose period holds ``day`` (default today)."""
    day = day or timezone.localdate()
    quotas = quota_list(user=user, filters=filters).filter(period_start__lte=day, period_end__gte=day)
    return [attainment_row(quota) for quota in with_attainment(quotas)]


def quota_attainment_of(*, user: Actor, holder, day: datetime.date | None = None) -> list[dict[str, Any]]:
    """``holder``'s own quotas in force on ``day`` (today): the dashboard's "my attainment"."""
    day = day or timezone.localdate()
    if user_is_person(user) and user.is_active and getattr(holder, "pk", holder) == user.pk:
        # One's own quotas are always among those one sees: read without the rule's subqueries, by a
        # statement compiled once a day (its two correlated subqueries and the currency conversion
        # took the ORM longer to build and compile than the database to run; crm.prepared).
        db = router.db_for_read(Quota)
        query = prepared(
            ("quota-attainment-of", db, day, company_currency()),
            lambda key: _in_force_with_attainment(Quota.objects.using(db).filter(user=key), day),
        )
        if query is not None:
            return [attainment_row(quota) for quota in query.objects(user.pk)]
        quotas = Quota.objects.filter(user=user.pk)
    else:
        quotas = quota_visible_to(user).filter(user=holder)
    return [attainment_row(quota) for quota in _in_force_with_attainment(quotas, day)]


def _in_force_with_attainment(quotas: QuerySet[Quota], day: datetime.date) -> QuerySet[Quota]:
    return with_attainment(
        quotas.filter(period_start__lte=day, period_end__gte=day).select_related("user", "team")
    )


def quota_targets(
    *, user: Actor, owner=None, period: str, starts: list[datetime.date]
) -> dict[datetime.date, Decimal]:
    """The target amounts of the periods starting on ``starts``: ``owner``'s quotas, or without an owner
    those of the teams ``user`` sees (one query)."""
    if not starts:
        return {}
    quotas = quota_visible_to(user).filter(
        period=period, period_start__in=starts, target_amount__isnull=False
    )
    quotas = quotas.filter(user=owner) if owner is not None else quotas.filter(team__isnull=False)
    targets: dict[datetime.date, Decimal] = {}
    for start, amount in quotas.values_list("period_start", "target_amount"):
        targets[start] = targets.get(start, Decimal("0")) + amount
    return targets


__all__ = [
    "attainment_row",
    "period_bounds",
    "quota_attainment",
    "quota_attainment_of",
    "quota_editable_by",
    "quota_list",
    "quota_targets",
    "quota_visible_to",
    "with_attainment",
]
