"""Changelists that stay fast on tables of millions of rows.

Two costs grow with a table and neither tells the user much on a big unfiltered list:

* the paginator's ``COUNT(*)``: with nothing filtered or searched, the count of the whole table is
  PostgreSQL's own estimate (``pg_class.reltuples``, kept by ANALYZE and autovacuum) and the page says
  "about N". A filter, search or date drill-down (anything that narrows the rows) counts exactly up to
  ``CRM_ADMIN_EXACT_COUNT_MAX`` rows; past that, "about N" from PostgreSQL's estimate of the filtered
  rows (or "more than" the cap where the estimate is lower): a million open leads are not counted
  one by one for a page of 100. Tables smaller than ``CRM_ADMIN_ESTIMATED_COUNT_MIN`` rows and
  databases other than PostgreSQL count exactly.
* the date hierarchy's ``SELECT DISTINCT date_trunc(...)`` over every row: the years, months or days
  it offers are those between the first and the last date of the rows shown (two index lookups), so
  a period without records can appear, and choosing it shows an empty list.
"""

import datetime
import functools
import json
import re

from django.conf import settings
from django.contrib.admin import RelatedFieldListFilter
from django.contrib.admin.options import IncorrectLookupParameters
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import FieldDoesNotExist
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import F, IntegerField, Max, Min, Q, QuerySet
from django.db.models.constants import LOOKUP_SEP
from django.utils import timezone
from django.utils.functional import cached_property
from django.utils.text import smart_split, unescape_string_literal

from crm.search_indexes import narrow_to_matches, plain_search, search_condition
from crm.selectors import record_visible_keyed, record_visible_listed


def table_row_estimate(model, using: str = "default") -> int | None:
    """PostgreSQL's estimate of the rows of ``model``'s table, or None when it has none to give."""
    connection = connections[using]
    if connection.vendor != "postgresql":
        return None
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT reltuples::bigint FROM pg_class WHERE oid = to_regclass(%s)",
            [connection.ops.quote_name(model._meta.db_table)],
        )
        row = cursor.fetchone()
    if row is None or row[0] is None or row[0] < 0:  # -1: never analyzed
        return None
    return int(row[0])


def is_whole_table(queryset: QuerySet) -> bool:
    """True when ``queryset`` counts every row of its table: no condition, no DISTINCT, no slice."""
    query = queryset.query
    return (
        not query.where.children
        and not query.distinct
        and not query.combinator
        and query.low_mark == 0
        and query.high_mark is None
    )


class EstimatedCountPaginator(Paginator):
    """A Paginator whose ``count`` is given (an estimate) instead of counted; ``count_is_estimate``
    tells the template to say "about"."""

    count_is_estimate = True

    def __init__(self, object_list, per_page, *, estimated_count: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.estimated_count = estimated_count

    @cached_property
    def count(self) -> int:
        return self.estimated_count


def query_row_estimate(queryset: QuerySet) -> int | None:
    """PostgreSQL's estimate of the rows ``queryset`` returns (its plan's top row count), or None."""
    if connections[queryset.db].vendor != "postgresql":
        return None
    plan = json.loads(queryset.order_by().explain(format="json"))
    return int(plan[0]["Plan"]["Plan Rows"])


class CappedCountPaginator(Paginator):
    """A Paginator that counts at most ``cap`` + 1 rows. Up to ``cap`` the count is exact; past it
    the page says "about N" from PostgreSQL's estimate of the rows (``count_is_estimate``), or "more
    than ``cap``" where the estimate is lower than what was counted (``count_is_lower_bound``)."""

    count_is_estimate = count_is_lower_bound = False

    def __init__(self, object_list, per_page, *, cap: int, **kwargs):
        super().__init__(object_list, per_page, **kwargs)
        self.cap = cap

    @cached_property
    def count(self) -> int:
        counted = self.object_list.order_by()[: self.cap + 1].count()
        if counted <= self.cap:
            return counted
        estimate = query_row_estimate(self.object_list)
        if estimate is not None and estimate > self.cap:
            self.count_is_estimate = True
            return estimate
        self.count_is_lower_bound = True
        return self.cap + 1


# Up to this many years between the first and the last record, the year list is every year between
# them (no query); a wider range (a date typed as year 9999) lists the years that have records.
YEAR_SPAN_LISTED = 20
# The most years a wide range lists, one index lookup each.
YEARS_LOOKED_UP = 100


def _next_period(day: datetime.date, step: str) -> datetime.date | None:
    """The first day of the next year, month or day after ``day``; None past 31 December 9999."""
    try:
        if step == "year":
            return day.replace(year=day.year + 1, month=1, day=1)
        if step == "month":
            return day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1, day=1)
        return day + datetime.timedelta(days=1)
    except (ValueError, OverflowError):
        return None


def _period_start(value, kind: str):
    """``value`` (a date, or a local datetime) truncated to its year, month or day."""
    is_datetime = isinstance(value, datetime.datetime)
    day = value.date() if is_datetime else value
    if kind == "year":
        day = day.replace(month=1, day=1)
    elif kind == "month":
        day = day.replace(day=1)
    return datetime.datetime.combine(day, datetime.time(), value.tzinfo) if is_datetime else day


def _period_starts(first, last, kind: str) -> list:
    """Every year, month or day from ``first`` to ``last`` (dates or local datetimes), as Django's
    ``QuerySet.dates()`` / ``datetimes()`` would truncate them."""
    is_datetime = isinstance(first, datetime.datetime)
    tzinfo = first.tzinfo if is_datetime else None
    day = _period_start(first.date() if is_datetime else first, kind)
    end = last.date() if is_datetime else last
    starts = []
    while day is not None and day <= end:
        starts.append(datetime.datetime.combine(day, datetime.time(), tzinfo) if is_datetime else day)
        day = _next_period(day, kind)
    return starts


def _localtime(value: datetime.datetime) -> datetime.datetime:
    """``value`` in the current time zone, or in UTC where that would leave the calendar (year 9999
    ahead of UTC, year 1 behind it)."""
    try:
        return timezone.localtime(value)
    except OverflowError:
        return value.astimezone(datetime.UTC)


class DateRangeQuerySetMixin:
    """``dates()`` and ``datetimes()`` from the first and last value (index lookups) rather than a
    DISTINCT over every row: for the admin's date hierarchy, which is all that calls them on a
    changelist's queryset."""

    def aggregate(self, *args, **kwargs):
        """Django's, but the first and last value of a field, which the date hierarchy asks for twice
        of the same queryset (to choose its level, then in ``dates()``), are read once."""
        first, last = kwargs.get("first"), kwargs.get("last")
        bounds_of = (
            first.source_expressions[0].name
            if not args
            and len(kwargs) == 2
            and type(first) is Min
            and type(last) is Max
            and not first.filter
            and not last.filter
            and isinstance(first.source_expressions[0], F)
            and first.source_expressions == last.source_expressions
            else None
        )
        if bounds_of is None:
            return super().aggregate(*args, **kwargs)
        known = self.__dict__.setdefault("_bounds_read", {})
        if bounds_of not in known:
            known[bounds_of] = super().aggregate(first=first, last=last)
        return dict(known[bounds_of])

    def _period_range(self, field_name: str, kind: str, is_datetime: bool) -> list:
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        first, last = bounds["first"], bounds["last"]
        if first is None or last is None:
            return []
        if is_datetime and settings.USE_TZ:
            first, last = _localtime(first), _localtime(last)
        if kind == "year" and last.year - first.year >= YEAR_SPAN_LISTED:
            return self._years_with_records(field_name, first, last)
        return _period_starts(first, last, kind)

    def _years_with_records(self, field_name: str, first, last) -> list:
        """The years that hold a value, found by one index lookup per year (each asks for the
        first value from the next year on), with the last year always listed."""
        starts = [_period_start(first, "year")]
        current = first
        while len(starts) < YEARS_LOOKED_UP:
            following = _next_period(_period_start(current, "year"), "year")
            if following is None or following > _period_start(last, "year"):
                break
            current = self.filter(**{f"{field_name}__gte": following}).aggregate(next=Min(field_name))["next"]
            if current is None:
                break
            if isinstance(current, datetime.datetime) and settings.USE_TZ:
                current = _localtime(current)
            starts.append(_period_start(current, "year"))
        last_start = _period_start(last, "year")
        if starts[-1] != last_start:
            starts.append(last_start)
        return starts

    def dates(self, field_name, kind, order="ASC"):
        starts = self._period_range(field_name, kind, is_datetime=False)
        return starts if order == "ASC" else starts[::-1]

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None):
        starts = self._period_range(field_name, kind, is_datetime=True)
        return starts if order == "ASC" else starts[::-1]


def with_date_ranges(queryset: QuerySet) -> QuerySet:
    """``queryset`` with DateRangeQuerySetMixin's ``dates()`` and ``datetimes()``."""
    base = type(queryset)
    clone = queryset._chain()
    clone.__class__ = type(f"DateRange{base.__name__}", (DateRangeQuerySetMixin, base), {})
    return clone


# The integers a database column can hold (PostgreSQL's bigint, SQLite's INTEGER); SQLite fails the
# whole query on a larger one where PostgreSQL finds nothing.
INTEGER_RANGE = (-(2**63), 2**63 - 1)
_INTEGER = re.compile(r"\s*[+-]?\d+\s*")


def _integer_field_of(model, lookup: str):
    """The integer field a changelist lookup (``owner``, ``stage__id__exact``) compares, or None."""
    opts, field = model._meta, None
    for part in lookup.split(LOOKUP_SEP):
        try:
            field = opts.get_field(part)
        except FieldDoesNotExist:
            break
        if field.is_relation and field.related_model is not None:
            opts = field.related_model._meta
            field = field.target_field if hasattr(field, "target_field") else opts.pk
    return field if isinstance(field, IntegerField) else None


class SafeChangeList(ChangeList):
    """Django's ChangeList, but query strings it would answer with a 500 are a bad lookup (the list
    redirects with "?e=1") or, for the calendar's last period, shown:

    * a date drill-down that is not a date (``__year=0``, ``__month=10**20``), and the last period
      there is (year 9999, December 9999, 31 December 9999), whose end Django computes past the
      calendar's;
    * an integer too large for the database compared with an id or another integer column.
    """

    def get_filters(self, request):
        result = self._get_filters_within_the_calendar(request)
        for key, values in result[2].items():
            field = _integer_field_of(self.model, key)
            if field is None:
                continue
            for value in values if isinstance(values, list) else [values]:
                parts = str(value).split(",") if key.endswith("__in") else [str(value)]
                for part in parts:
                    if _INTEGER.fullmatch(part) and not INTEGER_RANGE[0] <= int(part) <= INTEGER_RANGE[1]:
                        raise IncorrectLookupParameters(f"{key}: {part} is out of range.")
        return result

    def _get_filters_within_the_calendar(self, request):
        """Django's, with the date drill-down's last period open-ended, its bad values bad lookups."""
        last_period = self._last_period_start()
        if last_period is None:
            return super().get_filters(request)
        prefix = f"{self.date_hierarchy}__"
        drill_down = {f"{prefix}year", f"{prefix}month", f"{prefix}day"}
        params = self.filter_params
        self.filter_params = {key: value for key, value in params.items() if key not in drill_down}
        try:
            filter_specs, has_filters, lookup_params, may_have_duplicates, has_active = super().get_filters(
                request
            )
        finally:
            self.filter_params = params
        lookup_params[f"{prefix}gte"] = [last_period]
        return filter_specs, has_filters, lookup_params, may_have_duplicates, has_active

    def _last_period_start(self):
        """The start of the date drill-down's period when it is the calendar's last, else None.

        Raises IncorrectLookupParameters for a year, month or day that is not one (0, 13, 10**20)."""
        if not self.date_hierarchy:
            return None
        year, month, day = (
            self.filter_params.get(f"{self.date_hierarchy}__{part}") for part in ("year", "month", "day")
        )
        if year is None:
            return None
        try:
            start = datetime.datetime(
                int(year[-1]), int(month[-1] if month else 1), int(day[-1] if day else 1)
            )
        except (ValueError, OverflowError) as exc:
            raise IncorrectLookupParameters(exc) from exc
        step = "day" if day else "month" if month else "year"
        if _next_period(start.date(), step) is not None:
            return None
        return timezone.make_aware(start) if settings.USE_TZ else start


@functools.cache
def safe_changelist(changelist: type[ChangeList]) -> type[SafeChangeList]:
    """A third-party admin's own ChangeList (DRF's tokens list) with SafeChangeList's checks."""
    return type(f"Safe{changelist.__name__}", (SafeChangeList, changelist), {})


class ScalableChangeList(SafeChangeList):
    def get_queryset(self, request, exclude_parameters=None):
        return with_date_ranges(super().get_queryset(request, exclude_parameters))

    def _get_deterministic_ordering(self, ordering):
        """Django breaks ties with ``-pk`` whatever the sort's direction; here the id follows the first
        column's direction, so one (column, id) index serves a column sorted either way, where a
        mixed direction makes PostgreSQL sort every row that shares the first page's value."""
        result = super()._get_deterministic_ordering(ordering)
        if ordering and len(result) > len(ordering) and result[-1] == "-pk":
            first = ordering[0]
            descending = (
                first.startswith("-") if isinstance(first, str) else getattr(first, "descending", False)
            )
            if not descending:
                result[-1] = "pk"
        return result


class StageListFilter(RelatedFieldListFilter):
    """The stage filter, its choices named "Pipeline › Stage" from one query (not one per stage)."""

    def field_choices(self, field, request, model_admin):
        ordering = self.field_admin_ordering(field, request, model_admin) or ("pipeline", "sequence", "id")
        stages = field.related_model._default_manager.select_related("pipeline").order_by(*ordering)
        return [(stage.pk, str(stage)) for stage in stages]


class ScalableChangeListMixin:
    """For the ModelAdmin of a table that grows to millions of rows (see the module docstring)."""

    show_full_result_count = False

    def get_changelist(self, request, **kwargs):
        return ScalableChangeList

    def get_search_results(self, request, queryset, search_term):
        fields = self.get_search_fields(request)
        if search_term and plain_search(queryset.model, fields, queryset.db):
            # Django's search (each word, or quoted phrase, in one of the fields), each word one LIKE
            # on the table's search text, or a field across a foreign key looked up by its key
            # (crm.search_indexes.search_condition).
            words = [
                unescape_string_literal(bit) if bit.startswith(('"', "'")) and bit[0] == bit[-1] else bit
                for bit in smart_split(search_term)
            ]
            conditions = [search_condition(queryset.model, fields, word, queryset.db) for word in words]
            searched, may_have_duplicates = queryset.filter(Q.create(conditions)), False
        else:
            searched, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            scope = record_visible_listed(queryset.model, request.user)
            keyed_scope = record_visible_keyed(queryset.model, request.user)
            # Not counted: past CRM_ADMIN_ESTIMATED_COUNT_MIN rows the page counts at most
            # CRM_ADMIN_EXACT_COUNT_MAX + 1 of them (CappedCountPaginator), less than every match.
            searched = narrow_to_matches(searched, scope, unsearched=queryset, keyed_scope=keyed_scope)
        return searched, may_have_duplicates

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        estimate = table_row_estimate(queryset.model, queryset.db)  # None but on PostgreSQL
        if estimate is not None and estimate >= settings.CRM_ADMIN_ESTIMATED_COUNT_MIN:
            options = {"orphans": orphans, "allow_empty_first_page": allow_empty_first_page}
            if is_whole_table(queryset):
                return EstimatedCountPaginator(queryset, per_page, estimated_count=estimate, **options)
            return CappedCountPaginator(queryset, per_page, cap=settings.CRM_ADMIN_EXACT_COUNT_MAX, **options)
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
