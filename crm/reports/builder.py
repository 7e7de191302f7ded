"""The report builder: a record type, up to two group-by dimensions (a field, a related field, or a date
truncated to week, month, quarter or year), measures (count, sum, average, min, max of numeric fields)
and the list's filters, answered by one grouped query over the records the reader sees.

Record types are sources that apps register (``register_report_source``): crm registers leads and
accounts, sales opportunities, activities activities; crm never imports them. A source lists the fields
one may group by or measure; a field may need a permission (it does not exist for a reader without it).
A definition naming an unknown field, measure or filter is refused with a ValidationError naming it.
"""

import datetime
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import Avg, Count, F, Max, Min, QuerySet, Sum
from django.db.models.functions import TruncMonth, TruncQuarter, TruncWeek, TruncYear
from django.http import QueryDict
from django.utils import timezone

from crm.db.aggregates import count_rows
from crm.filters import filter_queryset

from . import INTEGER, MONEY, NUMBER, TEXT, Column, ReportResult

# Kinds of a builder field.
CHOICE, FOREIGN_KEY, BOOLEAN, DATE_KIND, DATETIME = "choice", "fk", "boolean", "date", "datetime"
NUMERIC = (NUMBER, MONEY, INTEGER)
TRUNCATIONS = {"week": TruncWeek, "month": TruncMonth, "quarter": TruncQuarter, "year": TruncYear}
OPERATIONS = {"count": Count, "sum": Sum, "avg": Avg, "min": Min, "max": Max}
MAX_DIMENSIONS = 2
MAX_MEASURES = 6
MAX_ROWS = 2000


@dataclass(frozen=True)
class BuilderField:
    name: str  # as definitions name it: "stage", "account__industry", "close_date"
    label: str
    kind: str = TEXT  # text, choice, fk, boolean, date, datetime, number, money, integer
    path: str = ""  # the ORM path (default: name)
    label_path: str = ""  # fk: the ORM path of the label shown for an id ("stage__name")
    choices: tuple[tuple[str, str], ...] = ()
    expression: Callable[[], Any] | None = None  # a computed numeric value (a converted amount)
    permission: str = ""  # the field exists only for readers with it

    @property
    def orm_path(self) -> str:
        return self.path or self.name


@dataclass(frozen=True)
class ReportSource:
    key: str  # "opportunities"
    label: str
    permission: str  # to read the records at all ("sales.view_opportunity")
    visible_to: Callable[..., QuerySet]  # (user) -> the records the reader sees
    filterset: type | None  # the list's FilterSet: the builder's filters are the list filters
    fields: tuple[BuilderField, ...] = field(default_factory=tuple)

    def fields_for(self, user) -> dict[str, BuilderField]:
        return {f.name: f for f in self.fields if not f.permission or user.has_perm(f.permission)}


_sources: dict[str, ReportSource] = {}


def register_report_source(source: ReportSource) -> None:
    _sources[source.key] = source


def report_sources(user=None) -> list[ReportSource]:
    return [s for s in _sources.values() if user is None or user.has_perm(s.permission)]


def report_source(key: str) -> ReportSource | None:
    return _sources.get(key)


@dataclass
class Dimension:
    field: BuilderField
    truncate: str = ""

    @property
    def key(self) -> str:
        return f"{self.field.name}:{self.truncate}" if self.truncate else self.field.name

    @property
    def label(self) -> str:
        return f"{self.field.label} ({self.truncate})" if self.truncate else self.field.label


@dataclass
class Measure:
    operation: str
    field: BuilderField | None = None

    @property
    def key(self) -> str:
        return f"{self.operation}:{self.field.name}" if self.field else "count"

    @property
    def label(self) -> str:
        names = {"count": "Count", "sum": "Sum", "avg": "Average", "min": "Minimum", "max": "Maximum"}
        return f"{names[self.operation]} of {self.field.label}" if self.field else "Count"

    @property
    def kind(self) -> str:
        if self.field is None or self.operation == "count":
            return INTEGER
        if self.operation == "avg":
            return MONEY if self.field.kind == MONEY else NUMBER
        return self.field.kind


@dataclass
class BuilderQuery:
    source: ReportSource
    dimensions: list[Dimension]
    measures: list[Measure]
    filters: dict[str, Any]


def _as_list(value, name: str) -> list:
    if value in (None, ""):
        return []
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        return value
    raise ValidationError({name: ["A list of names (or one comma-separated string)."]})


def builder_parse(*, user, definition: dict) -> BuilderQuery:
    """The definition checked against what ``user`` may see; ValidationError naming what is wrong."""
    if not isinstance(definition, dict):
        raise ValidationError({"definition": ["An object with record_type, group_by, measures, filters."]})
    key = definition.get("record_type")
    source = report_source(key) if isinstance(key, str) else None
    if source is None:
        choices = ", ".join(s.key for s in report_sources(user))
        raise ValidationError({"record_type": [f"Unknown record type {key!r}: choose one of {choices}."]})
    if not user.has_perm(source.permission):
        raise PermissionDenied(f"You may not read {source.label}.")
    fields = source.fields_for(user)
    known = ", ".join(fields)
    errors: dict[str, list[str]] = {}

    dimensions = []
    names = _as_list(definition.get("group_by"), "group_by")
    if len(names) > MAX_DIMENSIONS:
        errors.setdefault("group_by", []).append(f"At most {MAX_DIMENSIONS} group-by dimensions.")
    for name in names[:MAX_DIMENSIONS]:
        base, _, truncate = name.partition(":")
        found = fields.get(base)
        if found is None:
            errors.setdefault("group_by", []).append(
                f"Unknown field {base!r} for {source.key}: choose from {known}."
            )
        elif truncate and (found.kind not in (DATE_KIND, DATETIME) or truncate not in TRUNCATIONS):
            errors.setdefault("group_by", []).append(
                f"{name!r}: only a date is truncated, to one of {', '.join(TRUNCATIONS)}."
            )
        elif found.kind in NUMERIC:
            errors.setdefault("group_by", []).append(
                f"{base!r} is a figure: measure it rather than group by it."
            )
        else:
            dimensions.append(
                Dimension(found, truncate or ("month" if found.kind in (DATE_KIND, DATETIME) else ""))
            )

    measures = []
    names = _as_list(definition.get("measures"), "measures") or ["count"]
    if len(names) > MAX_MEASURES:
        errors.setdefault("measures", []).append(f"At most {MAX_MEASURES} measures.")
    for name in names[:MAX_MEASURES]:
        operation, _, field_name = name.partition(":")
        if operation not in OPERATIONS:
            errors.setdefault("measures", []).append(
                f"Unknown measure {name!r}: write count, or sum|avg|min|max:<numeric field>."
            )
            continue
        if operation == "count" and not field_name:
            measures.append(Measure("count"))
            continue
        found = fields.get(field_name)
        if found is None:
            errors.setdefault("measures", []).append(
                f"Unknown field {field_name!r} for {source.key}: choose from {known}."
            )
        elif found.kind not in NUMERIC:
            errors.setdefault("measures", []).append(
                f"{field_name!r} is not a number: it cannot be summed or averaged."
            )
        else:
            measures.append(Measure(operation, found))

    filters = definition.get("filters") or {}
    if not isinstance(filters, dict) or not all(
        isinstance(v, (str, int, float, bool, list)) for v in filters.values()
    ):
        errors.setdefault("filters", []).append('An object of list filters: {"status": "open", ...}.')
        filters = {}
    allowed = filter_parameters(source.filterset)
    for name in filters:
        if name not in allowed:
            errors.setdefault("filters", []).append(
                f"Unknown filter {name!r} for {source.key}: choose from {', '.join(sorted(allowed))}."
            )
    if errors:
        raise ValidationError(errors)
    return BuilderQuery(source, dimensions, measures, dict(filters))


def filter_parameters(filterset) -> set[str]:
    """The query parameters a FilterSet reads: a range filter's are its name with each suffix
    (``close_date_after``, ``close_date_before``); ordering is not a filter."""
    names: set[str] = set()
    if filterset is None:
        return names
    for name, declared in filterset.base_filters.items():
        if name == "ordering":
            continue
        widget = declared.extra.get("widget") or getattr(declared.field_class, "widget", None)
        suffixes = getattr(widget, "suffixes", None)
        if suffixes:
            names.update(f"{name}_{suffix}" if suffix else name for suffix in suffixes)
        else:
            names.add(name)
    return names


def _measure_expression(measure: Measure):
    if measure.field is None:
        return count_rows()
    value = measure.field.expression() if measure.field.expression else F(measure.field.orm_path)
    return OPERATIONS[measure.operation](value)


def _dimension_label(dimension: Dimension, value, label) -> str:
    if value is None or value == "":
        return "—"
    if dimension.truncate:
        if isinstance(value, datetime.datetime):
            value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
        if dimension.truncate == "year":
            return f"{value.year}"
        if dimension.truncate == "quarter":
            return f"{value.year}-Q{(value.month - 1) // 3 + 1}"
        if dimension.truncate == "week":
            year, week, _ = value.isocalendar()
            return f"{year}-W{week:02d}"
        return f"{value:%Y-%m}"
    if dimension.field.kind == FOREIGN_KEY:
        return str(label) if label is not None else str(value)
    if dimension.field.choices:
        return dict(dimension.field.choices).get(value, str(value))
    if dimension.field.kind == BOOLEAN:
        return "yes" if value else "no"
    return str(value)


def _filter_data(filters: dict[str, Any]) -> QueryDict:
    data = QueryDict(mutable=True)
    for name, value in filters.items():
        if isinstance(value, list):
            data.setlist(name, [str(item) for item in value])
        else:
            data[name] = str(value).lower() if isinstance(value, bool) else str(value)
    return data


def builder_run(*, user, definition: dict) -> tuple[ReportResult, dict[str, Any] | None]:
    """(the table, the pivot when there are two dimensions) of ``definition`` as ``user`` sees it."""
    query = builder_parse(user=user, definition=definition)
    records = query.source.visible_to(user)
    if query.source.filterset is not None and query.filters:
        records = filter_queryset(query.source.filterset, records, _filter_data(query.filters))
    records = records.order_by()
    annotations, values = {}, []
    for index, dimension in enumerate(query.dimensions):
        path = dimension.field.orm_path
        annotations[f"d{index}"] = TRUNCATIONS[dimension.truncate](path) if dimension.truncate else F(path)
        values.append(f"d{index}")
        if dimension.field.kind == FOREIGN_KEY and dimension.field.label_path:
            annotations[f"l{index}"] = F(dimension.field.label_path)
            values.append(f"l{index}")
    grouped = records.annotate(**annotations).values(*values) if values else records
    aggregates = {f"m{index}": _measure_expression(m) for index, m in enumerate(query.measures)}
    if values:
        # Empty values last on every database (PostgreSQL and SQLite disagree by default).
        ordering = [F(name).asc(nulls_last=True) for name in values]
        raw = list(grouped.annotate(**aggregates).order_by(*ordering)[: MAX_ROWS + 1])
    else:
        raw = [records.aggregate(**aggregates)]
    truncated = len(raw) > MAX_ROWS
    rows = []
    for item in raw[:MAX_ROWS]:
        row: dict[str, Any] = {}
        for index, dimension in enumerate(query.dimensions):
            row[dimension.key] = _dimension_label(dimension, item[f"d{index}"], item.get(f"l{index}"))
        for index, measure in enumerate(query.measures):
            value = item[f"m{index}"]
            if isinstance(value, float) and measure.kind in (MONEY, NUMBER):
                value = Decimal(str(value))
            row[measure.key] = value if value is not None or measure.operation != "count" else 0
        rows.append(row)
    columns = [Column(d.key, d.label, TEXT) for d in query.dimensions]
    columns += [Column(m.key, m.label, m.kind) for m in query.measures]
    notes = [f"{query.source.label}: only the records you see."]
    if truncated:
        notes.append(f"Only the first {MAX_ROWS} groups are shown.")
    first = query.measures[0]
    chart = None
    if query.dimensions:
        chart_rows = [
            {"label": " · ".join(str(row[d.key]) for d in query.dimensions), "value": row[first.key]}
            for row in rows
        ]
        chart = {"rows": chart_rows, "label": "label", "value": "value", "kind": first.kind}
    result = ReportResult(columns, rows, notes=notes, chart=chart)
    pivot = None
    if len(query.dimensions) == 2:
        across, down = query.dimensions[1].key, query.dimensions[0].key
        column_labels = list(dict.fromkeys(row[across] for row in rows))
        row_labels = list(dict.fromkeys(row[down] for row in rows))
        cells = {(row[down], row[across]): row[first.key] for row in rows}
        pivot = {
            "measure": first.key,
            "kind": first.kind,
            "row_field": down,
            "column_field": across,
            "columns": column_labels,
            "rows": [
                {"label": label, "cells": [cells.get((label, column)) for column in column_labels]}
                for label in row_labels
            ],
        }
    return result, pivot
