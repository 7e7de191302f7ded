"""A list page read as rows: ``.values()`` of the columns the page shows, built into the same JSON the
resource's serializer gives, without model instances or DRF's field-by-field ``to_representation``.

A page of 50 leads through ``LeadSerializer`` builds 350 model instances (the lead and its six joined
relations) and calls 36 fields' ``get_attribute`` and ``to_representation`` per row; that, not the
database, was most of the list's time (issue 24). A viewset names a ``ListRows`` subclass in
``list_rows``; its ``list`` action then reads the rows here. Anything else (retrieve, the writes'
answers, events, the schema) still goes through the serializer, which stays the contract:
tests/api/test_list_rows_api.py checks both give the same JSON for varied records.
"""

import datetime
import decimal
from collections.abc import Callable, Mapping
from typing import Any

from django.core.exceptions import FieldDoesNotExist
from django.db.models import Model, OuterRef, QuerySet, Subquery
from django.db.models.constants import LOOKUP_SEP
from rest_framework import ISO_8601, serializers
from rest_framework.settings import api_settings

# Field types whose JSON is not the stored value itself (a datetime's ISO text in the current time
# zone, a decimal's fixed-point text): their own to_representation converts them.
CONVERTED = (
    serializers.DateTimeField,
    serializers.DateField,
    serializers.TimeField,
    serializers.DecimalField,
    serializers.FloatField,
    serializers.DurationField,
)


# Query parameters that page or order a list without leaving records out.
_PAGING = frozenset({"page", "page_size", "cursor", "ordering", "format"})


# The list filters that the rollups of leads and deals (crm.rollups) keep their rows by: query
# parameter → rollup column. Each takes one value (an id, a status).
ROLLUP_FILTERS = {"status": "status", "owner": "owner_id", "pipeline": "pipeline_id", "stage": "stage_id"}


def list_narrowing(params: Mapping[str, Any]) -> dict[str, Any]:
    """The query parameters that may leave records out (a filter, a search), with their values (the last
    given, as the filters read them). Without any, a list's count is every record the reader sees,
    which a rollup knows; with only those of ``ROLLUP_FILTERS``, the rollup's rows of those values."""
    return {name: value for name, value in params.items() if name not in _PAGING and value not in (None, "")}


class ListRows:
    """Builds a page of ``serializer_class``'s JSON from ``.values()`` rows.

    ``columns`` maps each API field read from a column (or a ``__`` lookup, an annotation) to its
    lookup, where the name differs (``pipeline_id`` reads ``pipeline_id``: absent; ``pipeline_name``
    reads ``pipeline__name``). ``computed`` names the fields ``complete`` fills in for the whole page
    (tags, method fields). Every serializer field is one or the other: a field added to the serializer
    and not here fails the first list (and the test comparing both paths).
    """

    serializer_class: type[serializers.Serializer]
    columns: dict[str, str] = {}
    computed: tuple[str, ...] = ()

    def __init__(self, context: dict[str, Any]):
        self.context = context
        self.fields, self.names, self.lookups, self.converters = self._plan()

    @classmethod
    def _plan(cls):
        """The serializer's fields and what reads each: built once per class (building a serializer's
        fields deep-copies every declared field, a tenth of a list page's time)."""
        plan = cls.__dict__.get("_cached_plan")
        if plan is not None:
            return plan
        fields = cls.serializer_class().fields
        names = [name for name, field in fields.items() if not field.write_only]
        read = [name for name in names if name not in cls.computed]
        lookups = {name: cls.columns.get(name, name) for name in read}
        converters = [(name, fields[name]) for name in read if isinstance(fields[name], CONVERTED)]
        unknown = set(cls.columns) | set(cls.computed)
        unknown.difference_update(names)
        if unknown:
            raise AssertionError(f"{cls.__name__} names fields its serializer lacks: {sorted(unknown)}")
        cls._cached_plan = plan = (fields, names, lookups, converters)
        return plan

    def queryset(self, queryset: QuerySet, counted: Callable[[], int | None] | None = None) -> "CountedRows":
        """``queryset`` (the selector's, filtered and ordered) reading only the page's columns, and
        counted without the joins that read its labels, or by ``counted()`` when it gives a number.

        A label of a related record (``account__name``) is read by a subquery on that record's primary
        key, not a join: each join multiplies the orders PostgreSQL weighs when it plans the page, and
        the deal list's seven took 28 ms to plan for 3 ms of execution; a page's 25 rows then cost 25
        index lookups per label, a fraction of a millisecond."""
        extra = [lookup for lookup in self.extra_lookups() if lookup not in self.lookups.values()]
        columns, labels = [], {}
        for lookup in (*self.lookups.values(), *extra):
            label = related_label(queryset.model, lookup)
            if label is None:
                columns.append(lookup)
            else:
                labels[lookup] = label
        rows = queryset.prefetch_related(None).values(*columns, **labels)
        return CountedRows(rows, queryset, counted)

    def extra_lookups(self) -> tuple[str, ...]:
        """Columns ``complete`` needs besides the shown ones."""
        return ()

    def rows(self, records: list[dict]) -> list[dict]:
        """The page's JSON objects, keys in the serializer's order."""
        plan = [(name, self.lookups.get(name)) for name in self.names]
        converters = [(name, _page_converter(field)) for name, field in self.converters]
        result = []
        for record in records:
            # The computed fields hold their place in the serializer's order until ``complete``.
            row = {name: None if lookup is None else record[lookup] for name, lookup in plan}
            for name, convert in converters:
                value = row[name]
                if value is not None:
                    row[name] = convert(value)
            result.append(row)
        if records:
            self.complete(records, result)
        return result

    def complete(self, records: list[dict], rows: list[dict]) -> None:
        """Fill the ``computed`` fields of ``rows`` (the JSON) from ``records`` (the rows read)."""


def _page_converter(field: serializers.Field) -> Callable[[Any], Any]:
    """``field.to_representation`` for a page's values, with what DRF works out again for every value
    worked out once a page:

    * a datetime in ISO 8601, in the time zone DRF's field would choose (DRF's ``enforce_timezone``
      asks for the current zone each time);
    * a decimal as fixed-point text, quantized as DRF's ``quantize`` does (it copies the decimal
      context and raises ten to a power each time).

    Anything else, and any value not of the expected type, is DRF's."""
    convert = field.to_representation
    if type(field) is serializers.DateTimeField:
        return _iso_datetimes(field, convert)
    if type(field) is serializers.DecimalField:
        return _fixed_decimals(field, convert)
    return convert


def _iso_datetimes(field: serializers.DateTimeField, convert):
    output = getattr(field, "format", api_settings.DATETIME_FORMAT)
    zone = field.timezone if hasattr(field, "timezone") else field.default_timezone()
    if output is None or output.lower() != ISO_8601 or zone is None:
        return convert

    def iso(value):
        if value.__class__ is not datetime.datetime or value.tzinfo is None:
            return convert(value)
        try:
            text = value.astimezone(zone).isoformat()
        except OverflowError:  # DRF's error
            return convert(value)
        return text[:-6] + "Z" if text.endswith("+00:00") else text

    return iso


def _fixed_decimals(field: serializers.DecimalField, convert):
    as_text = getattr(field, "coerce_to_string", api_settings.COERCE_DECIMAL_TO_STRING)
    if not as_text or field.localize or field.normalize_output or field.decimal_places is None:
        return convert
    context = decimal.getcontext().copy()
    if field.max_digits is not None:
        context.prec = field.max_digits
    exponent, rounding = decimal.Decimal(".1") ** field.decimal_places, field.rounding

    def fixed(value):
        if value.__class__ is not decimal.Decimal:
            return convert(value)
        return f"{value.quantize(exponent, rounding=rounding, context=context):f}"

    return fixed


def related_label(model: type[Model], lookup: str) -> Subquery | None:
    """``lookup`` (``account__name``, ``contact__account__name``) as a subquery reading it from the
    related record by its primary key, when every step of it is a foreign key or one-to-one link
    followed forwards (one row or none, as the left join gives); None for a column of ``model``, or a
    path through a many-valued relation."""
    head, _, rest = lookup.partition(LOOKUP_SEP)
    if not rest:
        return None
    step = model
    for name in lookup.split(LOOKUP_SEP)[:-1]:
        try:
            field = step._meta.get_field(name)
        except FieldDoesNotExist:
            return None
        if not field.concrete or not (field.many_to_one or field.one_to_one):
            return None
        step = field.related_model
    first = model._meta.get_field(head)
    related = first.related_model._base_manager.filter(pk=OuterRef(first.attname))
    return Subquery(related.order_by().values(rest)[:1])


class CountedRows:
    """What the paginator pages: the rows' queryset, whose ``count()`` is the records' own.

    A ``.values()`` of labels (``pipeline__name``) joins their tables, and a count keeps an inner
    join (the database cannot know it drops no row): counting the records themselves reads the leads'
    table alone (its left joins to one-to-one relations are dropped by PostgreSQL's planner).
    Everything else (slicing, ``order_by``, ``filter`` for the cursor) is the rows' queryset's.
    """

    def __init__(self, rows: QuerySet, records: QuerySet, counted: Callable[[], int | None] | None = None):
        self.rows = rows
        self.records = records
        self.counted = counted

    def count(self) -> int:
        if self.counted is not None and (count := self.counted()) is not None:
            return count
        return self.records.count()

    def __getitem__(self, index):
        return self.rows[index]

    def __iter__(self):
        return iter(self.rows)

    def __len__(self) -> int:
        return len(self.rows)

    def __getattr__(self, name):
        return getattr(self.rows, name)


def kanban_data(board, builder: ListRows) -> dict[str, Any]:
    """A board (``crm.selectors.KanbanBoard`` whose cards were read as ``builder``'s rows) as the JSON
    ``kanban_serializer`` gives: the cards built in one pass, so the page's tags and estimates are read
    once for every column."""
    from crm.api.serializers import PipelineBriefSerializer, StageBriefSerializer

    cards = builder.rows([card for column in board.columns for card in column.results])
    total = serializers.DecimalField(max_digits=20, decimal_places=2)
    # One serializer for every column's stage: a ModelSerializer builds its fields when first asked.
    stages = StageBriefSerializer([column.stage for column in board.columns], many=True).data
    columns, start = [], 0
    for column, stage in zip(board.columns, stages, strict=True):
        end = start + len(column.results)
        columns.append(
            {
                "stage": stage,
                "count": column.count,
                "total": total.to_representation(column.total),
                "results": cards[start:end],
            }
        )
        start = end
    return {"pipeline": PipelineBriefSerializer(board.pipeline).data, "columns": columns}


def read_as_rows(builder: ListRows):
    """A board's ``cards`` reader (``crm.selectors.pipeline_kanban``): the first cards as ``builder``'s
    rows."""
    return lambda queryset: builder.queryset(queryset).rows
