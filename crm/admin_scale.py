"""Changelists that stay fast on tables of millions of rows.

Two costs grow with a table and neither tells the user much on a big unfiltered list:

* the paginator's ``COUNT(*)``: with nothing filtered or searched, the count of the whole table is
  PostgreSQL's own estimate (``pg_class.reltuples``, kept by ANALYZE and autovacuum) and the page says
  "about N". Any filter, search or date drill-down (anything that narrows the rows) counts exactly, as
  do tables smaller than ``CRM_ADMIN_ESTIMATED_COUNT_MIN`` rows and databases other than PostgreSQL.
* the date hierarchy's ``SELECT DISTINCT date_trunc(...)`` over every row: the years, months or days
  it offers are those between the first and the last date of the rows shown (two index lookups), so
  a period without records can appear, and choosing it shows an empty list.
"""

import datetime

from django.conf import settings
from django.contrib.admin import RelatedFieldListFilter
from django.contrib.admin.views.main import ChangeList
from django.core.paginator import Paginator
from django.db import connections
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from crm.search_indexes import narrow_to_matches


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


def _period_starts(first, last, kind: str) -> list:
    """Every year, month or day from ``first`` to ``last`` (dates or local datetimes), as Django's
    ``QuerySet.dates()`` / ``datetimes()`` would truncate them."""
    is_datetime = isinstance(first, datetime.datetime)
    tzinfo = first.tzinfo if is_datetime else None
    day = first.date() if is_datetime else first
    end = last.date() if is_datetime else last
    if kind == "year":
        day, step = day.replace(month=1, day=1), "year"
    elif kind == "month":
        day, step = day.replace(day=1), "month"
    else:
        step = "day"
    starts = []
    while day <= end:
        starts.append(datetime.datetime.combine(day, datetime.time(), tzinfo) if is_datetime else day)
        if step == "year":
            day = day.replace(year=day.year + 1)
        elif step == "month":
            day = day.replace(year=day.year + day.month // 12, month=day.month % 12 + 1)
        else:
            day += datetime.timedelta(days=1)
    return starts


class DateRangeQuerySetMixin:
    """``dates()`` and ``datetimes()`` from the first and last value (index lookups) rather than a
    DISTINCT over every row: for the admin's date hierarchy, which is all that calls them on a
    changelist's queryset."""

    def _period_range(self, field_name: str, kind: str, is_datetime: bool) -> list:
        bounds = self.aggregate(first=Min(field_name), last=Max(field_name))
        first, last = bounds["first"], bounds["last"]
        if first is None or last is None:
            return []
        if is_datetime and settings.USE_TZ:
            first, last = timezone.localtime(first), timezone.localtime(last)
        return _period_starts(first, last, kind)

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


class ScalableChangeList(ChangeList):
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
        queryset, may_have_duplicates = super().get_search_results(request, queryset, search_term)
        if search_term.strip():
            queryset = narrow_to_matches(queryset)
        return queryset, may_have_duplicates

    def get_paginator(self, request, queryset, per_page, orphans=0, allow_empty_first_page=True):
        if is_whole_table(queryset):
            estimate = table_row_estimate(queryset.model, queryset.db)
            if estimate is not None and estimate >= settings.CRM_ADMIN_ESTIMATED_COUNT_MIN:
                return EstimatedCountPaginator(
                    queryset,
                    per_page,
                    orphans=orphans,
                    allow_empty_first_page=allow_empty_first_page,
                    estimated_count=estimate,
                )
        return super().get_paginator(request, queryset, per_page, orphans, allow_empty_first_page)
