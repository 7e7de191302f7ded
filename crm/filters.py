"""django-filter FilterSets for the crm models, shared by the API, the selectors and the admin pages.

Each FilterSet carries the whole list contract: field filters, ``search`` over the natural text
fields and ``ordering`` from an explicit allow-list, so a selector given the request's query
parameters returns exactly what the API list would.
"""

import django_filters
from django import forms
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import models
from django.db.models import F, OrderBy, Q, QuerySet

from crm.models import Account, Contact, Lead, LostReason, Pipeline, Stage, Tag
from crm.search_indexes import narrow_to_matches


class StrictBooleanField(forms.NullBooleanField):
    """true/false (or 1/0, yes/no); anything else is an error rather than silently no filter."""

    widget = forms.TextInput  # NullBooleanSelect would turn unknown values into "no filter"
    TRUE = ("true", "1", "yes", "on")
    FALSE = ("false", "0", "no", "off")

    def to_python(self, value):
        if value in (None, ""):
            return None
        text = str(value).strip().lower()
        if text in self.TRUE:
            return True
        if text in self.FALSE:
            return False
        raise ValidationError("Use true or false.", code="invalid")

    def validate(self, value):
        pass


class StrictBooleanFilter(django_filters.BooleanFilter):
    field_class = StrictBooleanField


class SearchFilterSet(django_filters.FilterSet):
    """``?search=`` matches records where every word appears in at least one of ``search_fields``."""

    FILTER_DEFAULTS = {
        **django_filters.FilterSet.FILTER_DEFAULTS,
        models.BooleanField: {"filter_class": StrictBooleanFilter},
    }

    search_fields: tuple[str, ...] = ()

    search = django_filters.CharFilter(method="filter_search", label="Search")

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        for term in value.split():
            match = Q()
            for field in self.search_fields:
                match |= Q(**{f"{field}__icontains": term})
            queryset = queryset.filter(match)
        return narrow_to_matches(queryset)


def filter_queryset(filterset_class: type[django_filters.FilterSet], queryset: QuerySet, filters) -> QuerySet:
    """Apply ``filters`` (query parameters) with ``filterset_class``; bad values raise ValidationError."""
    if filters is None:
        return queryset
    filterset = filterset_class(data=filters, queryset=queryset)
    if not filterset.is_valid():
        raise ValidationError(filterset.errors.as_data())
    return filterset.qs


class NullsLastOrderingFilter(django_filters.OrderingFilter):
    """Sorts empty values last in both directions on every database (SQLite and PostgreSQL disagree),
    then by id, so pages of equal values do not shuffle between requests."""

    def get_ordering_value(self, param: str) -> OrderBy:
        descending = param.startswith("-")
        field = F(self.param_map[param.lstrip("-")])
        return field.desc(nulls_last=True) if descending else field.asc(nulls_last=True)

    def filter(self, qs: QuerySet, value) -> QuerySet:
        # ``?ordering=,`` or ``?ordering=name,`` split into empty names, which name no field: skipped.
        params = [param for param in value or () if param]
        if not params:
            return qs
        return qs.order_by(*[self.get_ordering_value(param) for param in params], "pk")


def ordering(*fields: str | tuple[str, str], help_text: str = "") -> django_filters.OrderingFilter:
    """``?ordering=name,-created_at`` over an allow-list: (model path, public name) or a plain name."""
    pairs = tuple(field if isinstance(field, tuple) else (field, field) for field in fields)
    names = ", ".join(public for _, public in pairs)
    return NullsLastOrderingFilter(
        fields=pairs,
        help_text=help_text or f"Sort by one or more of: {names}, comma-separated; prefix - for descending.",
    )


def owner_filter() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(queryset=get_user_model().objects.all(), label="Owner (user id)")


def tag_filter() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(field_name="tags", queryset=Tag.objects.all(), label="Tag id")


def id_filter(
    queryset: QuerySet, field_name: str | None = None, label: str = ""
) -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(field_name=field_name, queryset=queryset, label=label)


class LeadFilter(SearchFilterSet):
    search_fields = ("name", "contact_name", "email", "company_name", "phone")

    pipeline = id_filter(Pipeline.objects.all(), label="Pipeline id")
    stage = id_filter(Stage.objects.all(), label="Stage id")
    owner = owner_filter()
    tag = tag_filter()
    created = django_filters.DateFromToRangeFilter(field_name="created_at", label="Created between")
    score_min = django_filters.NumberFilter(field_name="score", lookup_expr="gte", label="Score at least")
    score_max = django_filters.NumberFilter(field_name="score", lookup_expr="lte", label="Score at most")
    ordering = ordering(
        "name",
        "company_name",
        "score",
        "created_at",
        "updated_at",
        "expected_revenue",
        "probability",
        ("priority_rank", "priority"),
        ("stage__sequence", "stage"),
        "status",
    )

    class Meta:
        model = Lead
        fields = ["pipeline", "stage", "priority", "rating", "source", "status", "owner", "tag"]


CHURN_BANDS = (
    ("high", "high (70+)"),
    ("medium", "medium (40–69)"),
    ("low", "low (under 40)"),
    ("none", "none"),
)


def _churn_field(queryset: QuerySet) -> str:
    # The list's reads annotate the score the reader may see (crm.insights); other callers read it raw.
    return "churn_score" if "churn_score" in queryset.query.annotations else "churn_risk__score"


class AccountFilter(SearchFilterSet):
    search_fields = ("name", "website", "phone", "billing_city", "billing_country")

    churn_risk = django_filters.ChoiceFilter(
        choices=CHURN_BANDS, method="filter_churn_band", label="Churn risk"
    )
    churn_min = django_filters.NumberFilter(method="filter_churn_min", label="Churn risk at least")

    def filter_churn_band(self, queryset, name, value):
        field = _churn_field(queryset)
        bands = {
            "high": Q(**{f"{field}__gte": 70}),
            "medium": Q(**{f"{field}__gte": 40, f"{field}__lt": 70}),
            "low": Q(**{f"{field}__lt": 40}),
            "none": Q(**{f"{field}__isnull": True}),
        }
        return queryset.filter(bands[value])

    def filter_churn_min(self, queryset, name, value):
        return queryset.filter(**{f"{_churn_field(queryset)}__gte": value})

    owner = owner_filter()
    tag = tag_filter()
    parent = id_filter(Account.objects.all(), label="Parent account id")
    ordering = ordering(
        "name",
        "created_at",
        "updated_at",
        "annual_revenue",
        "employees",
        "contact_count",
        "opportunity_count",
        "open_value",
        "won_value",
        ("churn_score", "churn_risk"),
    )

    class Meta:
        model = Account
        fields = ["account_type", "industry", "rating", "is_active", "owner", "parent", "tag"]


class ContactFilter(SearchFilterSet):
    search_fields = ("first_name", "last_name", "email", "phone", "mobile")

    account = id_filter(Account.objects.all(), label="Account id")
    owner = owner_filter()
    tag = tag_filter()
    ordering = ordering("last_name", "first_name", "email", "created_at", "updated_at")

    class Meta:
        model = Contact
        fields = ["account", "is_active", "is_primary", "owner", "tag"]


class PipelineFilter(SearchFilterSet):
    search_fields = ("name", "description")

    ordering = ordering("sequence", "name", "created_at")

    class Meta:
        model = Pipeline
        fields = ["is_active", "is_default"]


class StageFilter(SearchFilterSet):
    search_fields = ("name",)

    pipeline = id_filter(Pipeline.objects.all(), label="Pipeline id")
    ordering = ordering("sequence", "name", "probability", "created_at")

    class Meta:
        model = Stage
        fields = ["pipeline", "is_won", "is_lost"]


class TagFilter(SearchFilterSet):
    search_fields = ("name",)

    ordering = ordering("name", "created_at")

    class Meta:
        model = Tag
        fields: list[str] = []


class LostReasonFilter(SearchFilterSet):
    search_fields = ("name",)

    ordering = ordering("name", "created_at")

    class Meta:
        model = LostReason
        fields = ["is_active"]
