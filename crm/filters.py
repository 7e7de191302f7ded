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
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field

from crm.models import (
    LEAD_SEARCH_FIELDS,
    Account,
    Contact,
    Lead,
    LostReason,
    Pipeline,
    Segment,
    SegmentKind,
    Stage,
    Tag,
)
from crm.search_indexes import narrow_to_matches, search_condition


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

    def __init__(
        self,
        *args,
        search_scope: Q | None = None,
        search_keyed_scope: Q | None = None,
        search_counted: bool = False,
        only_given: bool = False,
        **kwargs,
    ):
        # The reader's visibility rule with the owners listed and on the owner key, for the read of a
        # search's matching ids (crm.search_indexes.narrow_to_matches), and whether the list will be
        # counted (a page-number page: the matches are then counted as their ids are read); the API's
        # filter backend passes them.
        self.search_scope = search_scope
        self.search_keyed_scope = search_keyed_scope
        self.search_counted = search_counted
        if only_given and not kwargs.get("prefix"):
            # Only the filters the data names are copied, built into the form and cleaned: a filter
            # given no value leaves the queryset as it is, and django-filter deep-copies every filter
            # (querysets included) and builds a form field for each, about thirty a list, on every
            # request. Not for a form shown to fill in (the browsable API's): it lists them all.
            data = kwargs.get("data", args[0] if args else None)
            self.base_filters = given_filters(self.base_filters, () if data is None else data.keys())
        super().__init__(*args, **kwargs)

    def filter_search(self, queryset: QuerySet, name: str, value: str) -> QuerySet:
        searched = queryset
        for term in value.split():
            searched = searched.filter(
                search_condition(queryset.model, self.search_fields, term, queryset.db)
            )
        return narrow_to_matches(
            searched,
            self.search_scope,
            unsearched=queryset,
            counted=self.search_counted,
            keyed_scope=self.search_keyed_scope,
        )

    def filter_queryset(self, queryset: QuerySet) -> QuerySet:
        """Every other filter first, the search last: its read of the matching ids (and their count)
        then has every condition of the list in it."""
        data = self.form.cleaned_data
        for name, value in data.items():
            if name != "search":
                queryset = self.filters[name].filter(queryset, value)
        if "search" in data:
            queryset = self.filters["search"].filter(queryset, data["search"])
        return queryset


def given_filters(filters: dict, keys) -> dict:
    """The ``filters`` (name → filter) that query parameters ``keys`` give a value: a parameter named as
    the filter, or as one of its parts (``close_date_after``, ``amount_min``)."""
    keys = [key for key in keys if key]
    return {
        name: filter_
        for name, filter_ in filters.items()
        if any(key == name or key.startswith(f"{name}_") for key in keys)
    }


def filter_queryset(
    filterset_class: type[django_filters.FilterSet], queryset: QuerySet, filters, *, reader=None
) -> QuerySet:
    """Apply ``filters`` (query parameters) with ``filterset_class``; bad values raise ValidationError.
    ``reader``: the user reading, whom an owner filter naming them takes as read (OwnerChoiceFilter)."""
    if filters is None:
        return queryset
    # Only the filters given a value are built (SearchFilterSet's only_given): a board or a selector's
    # list names two or three of some thirty.
    given = {"only_given": True} if issubclass(filterset_class, SearchFilterSet) else {}
    filterset = filterset_class(data=filters, queryset=queryset, **given)
    filterset.reader = reader
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


class OwnerChoiceField(forms.ModelChoiceField):
    """A user's id; the requesting user's own (``known``: "my records", the commonest owner filter) is
    taken as the user already read, without reading the row again."""

    known = None

    def to_python(self, value):
        known = self.known
        if known is not None and isinstance(value, str | int) and str(value) == str(known.pk):
            return known
        return super().to_python(value)


class OwnerChoiceFilter(django_filters.ModelChoiceFilter):
    field_class = OwnerChoiceField

    @property
    def field(self):
        field = super().field
        # Unbound (a class's base_filters, read for its keys and widgets), a filter has no parent.
        parent = getattr(self, "parent", None)
        user = getattr(parent, "reader", None)
        if user is None:
            user = getattr(getattr(parent, "request", None), "user", None)
        field.known = user if isinstance(user, get_user_model()) and user.pk is not None else None
        return field


def owner_filter() -> django_filters.ModelChoiceFilter:
    return OwnerChoiceFilter(queryset=get_user_model().objects.all(), label="Owner (user id)")


def tag_filter() -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(field_name="tags", queryset=Tag.objects.all(), label="Tag id")


def id_filter(
    queryset: QuerySet, field_name: str | None = None, label: str = ""
) -> django_filters.ModelChoiceFilter:
    return django_filters.ModelChoiceFilter(field_name=field_name, queryset=queryset, label=label)


@extend_schema_field(OpenApiTypes.INT)
class SegmentChoiceFilter(django_filters.ModelChoiceFilter):
    """A segment's id (the schema says integer: the filter method gives no type to guess from)."""


def segment_filter(entity: str) -> django_filters.ModelChoiceFilter:
    """``?segment=<id>``: the records of that segment (a saved filter, or a static list) of this kind."""
    return SegmentChoiceFilter(
        queryset=Segment.objects.filter(entity=entity),
        method="filter_segment",
        label=f"Segment id (a segment of {entity}s)",
    )


class SegmentFilterMixin:
    def filter_segment(self, queryset: QuerySet, name: str, segment: Segment) -> QuerySet:
        return segment_apply(segment, queryset)


class LeadFilter(SegmentFilterMixin, SearchFilterSet):
    search_fields = LEAD_SEARCH_FIELDS

    pipeline = id_filter(Pipeline.objects.all(), label="Pipeline id")
    stage = id_filter(Stage.objects.all(), label="Stage id")
    owner = owner_filter()
    tag = tag_filter()
    created = django_filters.DateFromToRangeFilter(field_name="created_at", label="Created between")
    score_min = django_filters.NumberFilter(field_name="score", lookup_expr="gte", label="Score at least")
    score_max = django_filters.NumberFilter(field_name="score", lookup_expr="lte", label="Score at most")
    segment = segment_filter("lead")
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


class AccountFilter(SegmentFilterMixin, SearchFilterSet):
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
    segment = segment_filter("account")
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


class ContactFilter(SegmentFilterMixin, SearchFilterSet):
    search_fields = ("first_name", "last_name", "email", "phone", "mobile")

    account = id_filter(Account.objects.all(), label="Account id")
    owner = owner_filter()
    tag = tag_filter()
    segment = segment_filter("contact")
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


# --- segments: a saved filter is the list's own filters, stored as data ----------------------------

SEGMENT_FILTERSETS: dict[str, type[SearchFilterSet]] = {
    "lead": LeadFilter,
    "contact": ContactFilter,
    "account": AccountFilter,
}
# Not filters of a segment: an order says nothing about who is in it, and a segment of a segment could
# loop.
SEGMENT_UNUSABLE_FILTERS = frozenset({"ordering", "segment"})


def segment_filter_keys(entity: str) -> list[str]:
    """The query parameters a segment of ``entity`` may use (a date range is two: created_after...)."""
    filterset_class = SEGMENT_FILTERSETS[entity]
    keys = []
    for name, flt in filterset_class.base_filters.items():
        if name in SEGMENT_UNUSABLE_FILTERS:
            continue
        widget = flt.field.widget
        suffixes = getattr(widget, "suffixes", None)
        if suffixes:
            keys.extend(widget.suffixed(name, suffix) for suffix in suffixes)
        else:
            keys.append(name)
    return keys


def segment_definition_errors(entity: str, definition) -> list[str]:
    """What is wrong with a dynamic segment's ``definition`` (a dict of the list's query parameters)."""
    if entity not in SEGMENT_FILTERSETS:
        return [f"Unknown kind of record “{entity}”."]
    if not isinstance(definition, dict):
        return ['Give the filters as an object: {"priority": "high", "source": "website"}.']
    allowed = segment_filter_keys(entity)
    errors = []
    for key, value in definition.items():
        if key not in allowed:
            errors.append(f"“{key}” is not a filter of the {entity} list. Use: {', '.join(sorted(allowed))}.")
            continue
        values = value if isinstance(value, list) else [value]
        if not values or not all(
            isinstance(v, str | int | bool) and not isinstance(v, float) for v in values
        ):
            errors.append(f"{key}: give a text, a number or a list of them.")
    if errors:
        return errors
    filterset = SEGMENT_FILTERSETS[entity](data=definition, queryset=_model_of(entity).objects.none())
    if not filterset.is_valid():
        for key, messages in filterset.errors.items():
            errors.extend(f"{key}: {message}" for message in messages)
    return errors


def _model_of(entity: str):
    return SEGMENT_FILTERSETS[entity]._meta.model


def segment_apply(segment: Segment, queryset: QuerySet) -> QuerySet:
    """``queryset`` narrowed to the records of ``segment``: its static members, or what its filters
    match now (the filters of the list itself, so a segment counts what the list shows)."""
    if segment.kind == SegmentKind.STATIC:
        through = getattr(Segment, f"{segment.entity}s").through
        ids = through.objects.filter(segment_id=segment.pk).values(f"{segment.entity}_id")
        return queryset.filter(pk__in=ids)
    return filter_queryset(SEGMENT_FILTERSETS[segment.entity], queryset, segment.definition or {})
