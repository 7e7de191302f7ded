"""The performance board: per user and per team, for a month, quarter or year, won revenue, deals won,
win rate, average deal size, sales cycle length, activities logged and quota attainment.

Who sees what: a CRM Admin every team and its members; a manager the teams they manage and their
members; a rep themselves and the totals of the teams they are in (not their team-mates' rows).
Team totals count every member's deals. A fixed number of queries whatever the number of users: the
teams and memberships, the users, the deals grouped by owner, the activities grouped by owner (counted
by the activities app through ``register_activity_counter``), and the quotas of the period.
"""

import datetime
from collections.abc import Callable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.contrib.auth import get_user_model
from django.db.models import Count, DurationField, ExpressionWrapper, F, Q, Sum
from django.utils import timezone

from crm.actors import Actor
from crm.models import SalesTeam
from crm.selectors import user_sees_everything
from sales.currencies import conversion_note, converted
from sales.models import Opportunity, OpportunityStatus, Quota, QuotaPeriod, company_currency, period_bounds
from sales.quotas import user_is_person

CENT = Decimal("0.01")
# (owner ids, first day, last day) -> {owner id: activities logged in the period}
ActivityCounter = Callable[[list[int], datetime.date, datetime.date], dict[int, int]]
_activity_counters: list[ActivityCounter] = []


def register_activity_counter(counter: ActivityCounter) -> None:
    """The activities app counts its records per owner (sales cannot import it)."""
    if counter not in _activity_counters:
        _activity_counters.append(counter)


def _visible_teams(user: Actor, everything: bool) -> list[SalesTeam]:
    """The (active) teams whose totals ``user`` sees: all, or those they manage or are in."""
    teams = SalesTeam.objects.filter(is_active=True).order_by("name", "pk")
    if not everything:
        teams = teams.filter(pk__in=SalesTeam.objects.filter(Q(manager=user) | Q(members=user)).values("pk"))
    return list(teams)


def _money(value) -> Decimal:
    return (value or Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)


def _percent(part, whole) -> float | None:
    if not whole:
        return None
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP))


def _figures(raw: dict[str, Any], quota: Quota | None) -> dict[str, Any]:
    won_count, lost_count = raw["won_count"], raw["lost_count"]
    won_amount = raw["won_amount"]
    cycle = raw["cycle"]
    return {
        "won_amount": _money(won_amount),
        "won_count": won_count,
        "lost_count": lost_count,
        "win_rate": _percent(won_count, won_count + lost_count),
        "average_deal": _money(won_amount / won_count) if won_count else None,
        "cycle_days": round(cycle.total_seconds() / 86400 / won_count, 1) if won_count and cycle else None,
        "activities": raw["activities"],
        "target_amount": quota.target_amount if quota else None,
        "target_count": quota.target_count if quota else None,
        "amount_attainment": _percent(won_amount, quota.target_amount)
        if quota and quota.target_amount
        else None,
        "count_attainment": _percent(won_count, quota.target_count) if quota and quota.target_count else None,
    }


def _empty() -> dict[str, Any]:
    return {
        "won_amount": Decimal("0"),
        "won_count": 0,
        "lost_count": 0,
        "cycle": datetime.timedelta(0),
        "activities": 0,
    }


def performance_board(
    *, user: Actor, period: str = QuotaPeriod.QUARTER, day: datetime.date | None = None
) -> dict[str, Any]:
    """The board of the ``period`` (month, quarter, year) holding ``day`` (default today).

    Deals count in the period of their close date: won revenue (converted into the company currency
    at the rate in force on the close date), deals won, win rate = won / (won + lost), average deal =
    won revenue / deals won, sales cycle = mean days from creation to closing of the deals won.
    Activities logged = activities created in the period. Attainment against the quota of that exact
    period (a quarter's board reads quarterly quotas). Users and teams sorted by won revenue.
    """
    if period not in QuotaPeriod.values:
        raise ValueError(f"period must be one of {QuotaPeriod.values}, not {period!r}")
    start, end = period_bounds(period, day or timezone.localdate())
    result: dict[str, Any] = {
        "period": period,
        "date_from": start,
        "date_to": end,
        "currency": company_currency(),
        "conversion": conversion_note(),
        "users": [],
        "teams": [],
    }
    if not user_is_person(user) or not user.is_active:
        return result
    everything = user_sees_everything(user)
    teams = _visible_teams(user, everything)
    shown = {user.pk}
    memberships = list(
        SalesTeam.members.through.objects.filter(salesteam__in=[t.pk for t in teams]).values_list(
            "salesteam_id", "user_id"
        )
    )
    members: dict[int, set[int]] = {team.pk: set() for team in teams}
    for team_id, member_id in memberships:
        members[team_id].add(member_id)
    if everything:
        shown = set().union(*members.values())
    else:
        # A manager sees the rows of the members of the teams they manage.
        for team in teams:
            if team.manager_id == user.pk:
                shown |= members[team.pk]
    counted = sorted(shown.union(*members.values()))

    raw = {pk: _empty() for pk in counted}
    cycle = ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField())
    is_won = Q(status=OpportunityStatus.WON)
    deals = (
        Opportunity.objects.filter(
            owner__in=counted,
            status__in=(OpportunityStatus.WON, OpportunityStatus.LOST),
            close_date__gte=start,
            close_date__lte=end,
        )
        .order_by()
        .values("owner_id")
        .annotate(
            won_count=Count("pk", filter=is_won),
            lost_count=Count("pk", filter=Q(status=OpportunityStatus.LOST)),
            won_amount=Sum(converted(), filter=is_won),
            cycle=Sum(cycle, filter=is_won),
        )
    )
    for row in deals:
        figures = raw[row["owner_id"]]
        figures["won_count"], figures["lost_count"] = row["won_count"], row["lost_count"]
        figures["won_amount"] = row["won_amount"] or Decimal("0")
        figures["cycle"] = row["cycle"] or datetime.timedelta(0)
    for counter in _activity_counters:
        for owner_id, count in counter(counted, start, end).items():
            if owner_id in raw:
                raw[owner_id]["activities"] += count

    quotas = Quota.objects.filter(period=period, period_start=start).filter(
        Q(user__in=counted) | Q(team__in=[t.pk for t in teams])
    )
    user_quotas, team_quotas = {}, {}
    for quota in quotas:
        if quota.user_id:
            user_quotas[quota.user_id] = quota
        else:
            team_quotas[quota.team_id] = quota
    names = dict(get_user_model().objects.filter(pk__in=counted).values_list("pk", "username"))

    result["users"] = sorted(
        (
            {"user_id": pk, "username": names.get(pk, ""), **_figures(raw[pk], user_quotas.get(pk))}
            for pk in shown
            if pk in names
        ),
        key=lambda row: (-row["won_amount"], row["username"]),
    )
    team_rows = []
    for team in teams:
        total = _empty()
        for member_id in members[team.pk]:
            for name in total:
                total[name] += raw[member_id][name]
        team_rows.append(
            {
                "team_id": team.pk,
                "name": team.name,
                "member_count": len(members[team.pk]),
                **_figures(total, team_quotas.get(team.pk)),
            }
        )
    result["teams"] = sorted(team_rows, key=lambda row: (-row["won_amount"], row["name"]))
    return result
