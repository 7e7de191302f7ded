"""Reads of territories: the rules as one pure matching function, the lists, and the visibility grant
that lets a territory's members see the deals and leads of its accounts (CRM_TERRITORY_VISIBILITY).

Which territory an account belongs to: among the active territories one of whose rules the account
matches, the deepest (DACH before EMEA), then the lowest ``sequence``, then the oldest. One rule, fed by
the rules read once (``territory_rules``), used by the services for one account and by the background
run for all of them.
"""

from dataclasses import dataclass

from django.conf import settings
from django.db.models import Count, IntegerField, OuterRef, Q, QuerySet, Subquery
from django.db.models.functions import Coalesce

from crm.actors import Actor
from crm.filters import filter_queryset
from crm.models import Account, Lead
from crm.selectors import register_visibility_grant, user_sees_everything
from sales.filters import TerritoryFilter
from sales.models import AccountTerritory, Opportunity, Territory, TerritoryRule, TerritoryRun


@dataclass(frozen=True)
class CompiledRule:
    rule_id: int
    territory_id: int
    territory_name: str
    order: tuple
    country: str
    state: str
    postal_code_prefix: str
    industry: str
    employees_min: int | None
    employees_max: int | None

    def matches(self, account: Account) -> bool:
        if self.country and _text(account.billing_country) != self.country:
            return False
        if self.state and _text(account.billing_state) != self.state:
            return False
        if self.postal_code_prefix and not _postal(account.billing_zip).startswith(self.postal_code_prefix):
            return False
        if self.industry and account.industry != self.industry:
            return False
        if self.employees_min is not None or self.employees_max is not None:
            if account.employees is None:
                return False
            if self.employees_min is not None and account.employees < self.employees_min:
                return False
            if self.employees_max is not None and account.employees > self.employees_max:
                return False
        return True


def _text(value: str | None) -> str:
    return " ".join((value or "").split()).casefold()


def _postal(value: str | None) -> str:
    return "".join((value or "").split()).casefold()


def territory_rules() -> list[CompiledRule]:
    """Every rule of an active territory, in the order they are tried (two queries)."""
    parents = dict(Territory.objects.values_list("pk", "parent_id"))

    def depth(pk: int) -> int:
        seen, level = {pk}, 0
        while (pk := parents.get(pk)) is not None and pk not in seen:
            seen.add(pk)
            level += 1
        return level

    rules = [
        CompiledRule(
            rule_id=rule.pk,
            territory_id=rule.territory_id,
            territory_name=rule.territory.name,
            order=(-depth(rule.territory_id), rule.territory.sequence, rule.territory_id, rule.pk),
            country=_text(rule.country),
            state=_text(rule.state),
            postal_code_prefix=_postal(rule.postal_code_prefix),
            industry=rule.industry,
            employees_min=rule.employees_min,
            employees_max=rule.employees_max,
        )
        for rule in TerritoryRule.objects.filter(territory__is_active=True).select_related("territory")
    ]
    return sorted(rules, key=lambda rule: rule.order)


def territory_match(rules: list[CompiledRule], account: Account) -> CompiledRule | None:
    """The rule that places ``account`` (``rules`` as territory_rules orders them), or None."""
    return next((rule for rule in rules if rule.matches(account)), None)


# --- lists ----------------------------------------------------------------------------------------


def territory_visible_to(user: Actor) -> QuerySet[Territory]:
    """Territories are configuration: every signed-in member of staff reads them."""
    if not user.is_authenticated or not user.is_active:
        return Territory.objects.none()
    return Territory.objects.all()


def with_account_count(queryset: QuerySet[Territory]) -> QuerySet[Territory]:
    placed = (
        AccountTerritory.objects.filter(territory=OuterRef("pk"))
        .order_by()
        .values("territory")
        .annotate(n=Count("*"))
        .values("n")
    )
    return queryset.annotate(account_count=Coalesce(Subquery(placed, output_field=IntegerField()), 0))


def territory_list(*, user: Actor, filters=None) -> QuerySet[Territory]:
    queryset = with_account_count(
        territory_visible_to(user).select_related("parent", "team").prefetch_related("rules", "members")
    )
    return filter_queryset(TerritoryFilter, queryset, filters)


def territory_run_list(*, user: Actor, filters=None) -> QuerySet[TerritoryRun]:
    """A CRM Admin sees every run; anyone else the runs they started."""
    runs = TerritoryRun.objects.select_related("started_by")
    if user_sees_everything(user):
        return runs
    if not user.is_authenticated or not user.is_active:
        return runs.none()
    return runs.filter(started_by=user.pk)


# --- visibility: members see their territories' deals and leads -----------------------------------


def territory_account_ids(user: Actor) -> QuerySet:
    """The ids of the accounts placed in the active territories ``user`` is a member of (directly, or
    as a member or the manager of the territory's team): a subquery."""
    mine = Q(territory__members=user.pk) | Q(territory__team__members=user.pk)
    mine |= Q(territory__team__manager=user.pk)
    return AccountTerritory.objects.filter(mine, territory__is_active=True).values("account")


def territory_visibility_grant(model, user: Actor) -> Q | None:
    if not settings.CRM_TERRITORY_VISIBILITY:
        return None
    if model is Opportunity:
        return Q(account__in=territory_account_ids(user))
    if model is Lead:
        # A lead reaches an account when it is converted: its account's territory is the lead's.
        return Q(converted_account__in=territory_account_ids(user))
    return None


register_visibility_grant(territory_visibility_grant)
