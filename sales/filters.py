"""django-filter FilterSets for opportunities, shared by the API, the selectors and the admin pages."""

import django_filters
from django.contrib.auth import get_user_model

from crm.filters import SearchFilterSet, id_filter, ordering, owner_filter, tag_filter
from crm.models import Account, Contact, Pipeline, SalesTeam, Stage
from sales.models import (
    CommissionAssignment,
    CommissionStatement,
    ExchangeRate,
    Opportunity,
    Quota,
    Territory,
)


class OpportunityFilter(SearchFilterSet):
    search_fields = ("name", "account__name", "description")

    pipeline = id_filter(Pipeline.objects.all(), label="Pipeline id")
    stage = id_filter(Stage.objects.all(), label="Stage id")
    account = id_filter(Account.objects.all(), label="Account id")
    contact = id_filter(Contact.objects.all(), label="Contact id")
    owner = owner_filter()
    tag = tag_filter()
    close_date = django_filters.DateFromToRangeFilter(
        label="Close date between (close_date_after, close_date_before; inclusive)"
    )
    ordering = ordering(
        "name",
        "amount",
        "probability",
        "close_date",
        "created_at",
        "updated_at",
        ("priority_rank", "priority"),
        ("stage__sequence", "stage"),
        ("account__name", "account"),
        "status",
    )

    class Meta:
        model = Opportunity
        fields = [
            "pipeline",
            "stage",
            "account",
            "contact",
            "priority",
            "status",
            "opportunity_type",
            "currency",
            "owner",
            "tag",
            "close_date",
        ]


class ExchangeRateFilter(SearchFilterSet):
    search_fields = ("currency",)

    date = django_filters.DateFromToRangeFilter(label="In force from between (date_after, date_before)")
    ordering = ordering("currency", "date", "rate")

    class Meta:
        model = ExchangeRate
        fields = ["currency", "date"]


class QuotaFilter(django_filters.FilterSet):
    user = owner_filter()
    team = id_filter(SalesTeam.objects.all(), label="Team id")
    period_start = django_filters.DateFromToRangeFilter(
        label="Period starting between (period_start_after, period_start_before)"
    )
    ordering = ordering("period_start", "period", "target_amount", "target_count")

    class Meta:
        model = Quota
        fields = ["user", "team", "period", "period_start"]


class TerritoryFilter(SearchFilterSet):
    search_fields = ("name", "description")

    parent = id_filter(Territory.objects.all(), label="Parent territory id")
    team = id_filter(SalesTeam.objects.all(), label="Team id")
    member = id_filter(get_user_model().objects.all(), field_name="members", label="Member (user id)")
    ordering = ordering("name", "sequence", "created_at", "account_count")

    class Meta:
        model = Territory
        fields = ["parent", "team", "member", "is_active"]


class CommissionAssignmentFilter(django_filters.FilterSet):
    user = owner_filter()
    period_start = django_filters.DateFromToRangeFilter(
        label="Period starting between (period_start_after, period_start_before)"
    )
    ordering = ordering("period_start", "period")

    class Meta:
        model = CommissionAssignment
        fields = ["user", "plan", "period", "period_start"]


class CommissionStatementFilter(django_filters.FilterSet):
    user = owner_filter()
    period_start = django_filters.DateFromToRangeFilter(
        label="Period starting between (period_start_after, period_start_before)"
    )
    ordering = ordering("period_start", "period", "total", "status")

    class Meta:
        model = CommissionStatement
        fields = ["user", "plan", "period", "status", "period_start"]
