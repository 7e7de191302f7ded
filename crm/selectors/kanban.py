"""Boards: a pipeline's columns with their first cards and counts, in a fixed number of queries whatever the
board's size.
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from django.core.exceptions import EmptyResultSet, ValidationError
from django.db import connection
from django.db.models import (
    BooleanField,
    DecimalField,
    F,
    IntegerField,
    Model,
    QuerySet,
    Sum,
    Value,
    Window,
)
from django.db.models.expressions import RawSQL
from django.db.models.functions import Coalesce, RowNumber

from crm.actors import Actor
from crm.db.aggregates import count_rows
from crm.models import Lead, LeadRollup, Pipeline, Stage
from crm.models.pipeline import default_pipeline, pipeline_stages

from .lists import Filters, lead_list
from .visibility import owned_records_visible_owners, owned_records_visible_owners_listed

# --- kanban boards --------------------------------------------------------------------------------

KANBAN_DEFAULT_LIMIT = 20
KANBAN_MAX_LIMIT = 100
# No column is this long; a larger offset (which the database could not take) has no cards.
KANBAN_MAX_OFFSET = 2**62


@dataclass
class KanbanColumn:
    stage: Stage
    count: int = 0
    total: Decimal = Decimal("0.00")
    # Model instances, or the rows ``pipeline_kanban``'s ``cards`` reads (dicts with ``stage_id``).
    results: list[Model | dict] = field(default_factory=list)


@dataclass
class KanbanBoard:
    pipeline: Pipeline
    columns: list[KanbanColumn]


def pipeline_for_board(pipeline: Pipeline | None) -> Pipeline:
    """The pipeline a board, forecast or dashboard shows: the one asked for, else the default one."""
    if pipeline is not None:
        return pipeline
    default = default_pipeline()
    if default is None:
        raise ValidationError({"pipeline": "There is no default pipeline: choose a pipeline."})
    return default


def _window_ordering(queryset: QuerySet) -> list:
    """The queryset's ordering (the ``ordering`` filter's, else the model's) as window expressions."""
    ordering = list(queryset.query.order_by or queryset.model._meta.ordering)
    expressions = []
    for item in ordering:
        if isinstance(item, str):
            name = item.lstrip("-")
            item = F(name).desc() if item.startswith("-") else F(name).asc()
        expressions.append(item)
    if not any(getattr(expr.expression, "name", None) in ("pk", "id") for expr in expressions):
        expressions.append(F("pk").desc())
    return expressions


# Query parameters that change a board's order or size but not which records it counts.
_NOT_NARROWING = frozenset({"pipeline", "limit", "ordering", "offset", "format"})


# The leads board's filters that LeadRollup's rows answer: query parameter → rollup column.
LEAD_BOARD_ROLLUP_FILTERS = {"owner": "owner_id", "status": "status", "stage": "stage_id"}


def rollup_where(filters: Filters, columns: Mapping[str, str]) -> dict[str, object] | None:
    """``filters`` (query parameters) as conditions on a rollup's columns (``columns``: query parameter
    → column, such as owner → owner_id), or None when one of them is not a column of the rollup: then
    the records are counted. A bad value is reported by the records' filters first (a board builds
    their queryset before it counts)."""
    narrowing = {
        name: value
        for name, value in (filters or {}).items()
        if name not in _NOT_NARROWING and value not in (None, "")
    }
    if not narrowing.keys() <= columns.keys():
        return None
    return {columns[name]: value for name, value in narrowing.items()}


def rollup_board_totals(
    rollup: type[Model],
    *,
    user: Actor,
    model: type[Model],
    sum_field: str,
    filters: Filters,
    columns: Mapping[str, str],
) -> Callable[[list[Stage]], list[dict] | None] | None:
    """A board's ``column_totals`` (see ``pipeline_kanban``) read from ``rollup``'s rows that
    ``filters`` keep (``columns``: see ``rollup_where``), or None when a filter is not one of its
    columns: then the board counts its records."""
    where = rollup_where(filters, columns)
    if where is None:
        return None
    return lambda stages: rollup_column_totals(
        rollup.objects.all(), stages=stages, user=user, model=model, sum_field=sum_field, where=where
    )


def rollup_column_totals(
    rollup: QuerySet,
    *,
    stages: list[Stage],
    user: Actor,
    model,
    sum_field: str,
    where: dict[str, object] | None = None,
):
    """Each stage's count and value total from a rollup (``n`` and ``sum_field`` in cents), over the
    owners ``user`` sees and the rows ``where`` keeps (see ``rollup_where``); None when visibility is
    not a matter of owners (then the board counts)."""
    owners = owned_records_visible_owners(model, user)
    if owners is None:
        return None
    rows = (
        rollup.filter(owners, stage_id__in=[stage.pk for stage in stages], **(where or {}))
        .order_by()
        .values("stage_id")
        .annotate(count=Sum("n"), cents=Sum(sum_field))
    )
    return [
        {"stage_id": row["stage_id"], "count": row["count"], "total": Decimal(row["cents"]) / 100}
        for row in rows
    ]


def rollup_count(
    rollup: type[Model], *, model: type[Model], user: Actor, where: dict[str, object] | None = None
) -> int | None:
    """How many records of ``model`` ``user`` sees, summed from ``rollup`` (its ``n`` per owner), or None
    when visibility is not a matter of owners (then the caller counts the records): a list's count of a
    million rows read from a few hundred. ``where`` narrows the rollup's rows (column → value: those
    whose records a list's filters keep, such as ``status`` and ``owner_id``). The owners are listed
    first, so an index on the rollup's owner answers it (the deals' rollup has 22,000 rows at 1M)."""
    owners = owned_records_visible_owners_listed(model, user)
    if owners is None:
        return None
    return rollup.objects.filter(owners, **(where or {})).aggregate(n=Sum("n"))["n"] or 0


def pipeline_kanban(
    *,
    queryset: QuerySet,
    pipeline: Pipeline,
    value_field: str,
    limit: int,
    column_totals=None,
    cards: Callable[[QuerySet], Iterable] | None = None,
) -> KanbanBoard:
    """A board of ``queryset``'s records in ``pipeline``: a column per stage, in stage order.

    A column holds the records in its stage. Each has the count and ``value_field`` total of all of
    them and its first ``limit`` cards in the queryset's order (one query, plus the queryset's
    prefetches; see ``_kanban_first_cards``). ``column_totals(stages)`` gives the counts and totals
    from a rollup, or None; without it (or when it gives None) one grouped aggregate query counts them
    (on PostgreSQL the stage index, which carries the value and the owner, answers it). ``cards(queryset)``
    reads the first cards some other way than as model instances (the API's rows, crm.api.listing).
    """
    limit = max(0, min(limit, KANBAN_MAX_LIMIT))
    stages = pipeline_stages(pipeline.pk)
    for stage in stages:
        Stage.pipeline.field.set_cached_value(stage, pipeline)
    columns = {stage.pk: KanbanColumn(stage=stage) for stage in stages}
    money = DecimalField(max_digits=16, decimal_places=2)
    in_stages = queryset.filter(stage__in=[stage.pk for stage in stages])
    totals = column_totals(stages) if column_totals is not None and stages else None
    if totals is None:
        totals = (
            in_stages.order_by()
            .values("stage_id")
            .annotate(
                count=count_rows(), total=Coalesce(Sum(value_field), Value(Decimal("0")), output_field=money)
            )
        )
    for row in totals:
        column = columns.get(row["stage_id"])
        if column is not None:
            column.count = row["count"]
            column.total = row["total"].quantize(Decimal("0.01"))
    if limit and stages:
        first = _kanban_first_cards(in_stages, pipeline, limit)
        if cards is None:
            records = ((record.stage_id, record) for record in first)
        else:
            records = ((record["stage_id"], record) for record in cards(first))
        for stage_id, record in records:
            column = columns.get(stage_id)
            if column is not None:
                column.results.append(record)
    return KanbanBoard(pipeline=pipeline, columns=list(columns.values()))


def _kanban_first_cards(queryset: QuerySet, pipeline: Pipeline, limit: int) -> QuerySet:
    """The first ``limit`` records of each stage of ``pipeline`` in ``queryset``'s order, by stage.

    PostgreSQL: a LATERAL join over the pipeline's stages runs ``ORDER BY ... LIMIT n`` once per stage,
    which the (stage, created_at, id) index answers by reading n entries for the default order; the
    records are then loaded by id with the queryset's joins. Elsewhere: ROW_NUMBER() over each stage.
    """
    ordering = _window_ordering(queryset)
    if connection.vendor != "postgresql":
        ranked = queryset.annotate(
            kanban_rank=Window(RowNumber(), partition_by=[F("stage_id")], order_by=ordering)
        )
        return ranked.filter(kanban_rank__lte=limit).order_by("stage_id", "kanban_rank")
    stage_table = connection.ops.quote_name(Stage._meta.db_table)
    per_stage = (
        queryset.filter(stage_id=RawSQL("kanban_stage.id", [], output_field=IntegerField()))
        .order_by(*ordering)
        .values("pk")[:limit]
    )
    try:
        per_stage_sql, params = per_stage.query.sql_with_params()
    except EmptyResultSet:  # a filter that nothing can match (a search without matches)
        return queryset.none()
    quote = connection.ops.quote_name
    pk_column = f"{quote(queryset.model._meta.db_table)}.{quote(queryset.model._meta.pk.column)}"
    # "= ANY(ARRAY(...))" rather than "IN (...)": the planner runs the few ids first and fetches them
    # by primary key, where it would otherwise guess a large IN list and hash-join the whole table.
    first_cards = RawSQL(
        f"{pk_column} = ANY(ARRAY(SELECT kanban_card.pk FROM {stage_table} kanban_stage "
        f"CROSS JOIN LATERAL ({per_stage_sql}) kanban_card WHERE kanban_stage.pipeline_id = %s))",
        (*params, pipeline.pk),
        output_field=BooleanField(),
    )
    return queryset.filter(first_cards).order_by("stage_id", *ordering)


def lead_kanban(
    *,
    user: Actor,
    pipeline: Pipeline | None = None,
    filters: Filters = None,
    limit: int = KANBAN_DEFAULT_LIMIT,
    cards: Callable[[QuerySet], Iterable] | None = None,
) -> KanbanBoard:
    """The leads board of ``pipeline`` (default: the default pipeline); ``total`` sums expected revenue.
    ``cards``: see ``pipeline_kanban``."""
    return pipeline_kanban(
        queryset=lead_list(user=user, filters=filters),
        pipeline=pipeline_for_board(pipeline),
        value_field="expected_revenue",
        limit=limit,
        column_totals=rollup_board_totals(
            LeadRollup,
            user=user,
            model=Lead,
            sum_field="expected_revenue_cents",
            filters=filters,
            columns=LEAD_BOARD_ROLLUP_FILTERS,
        ),
        cards=cards,
    )


def pipeline_kanban_cards(
    *, queryset: QuerySet, stage: Stage, offset: int = 0, limit: int = KANBAN_DEFAULT_LIMIT
) -> tuple[list[Model], bool]:
    """More cards for one column of a board: ``limit`` records from ``offset``, in the board's order.

    Returns the records and whether more follow (one query, fetching one record beyond the page).
    """
    offset = max(0, offset)
    limit = max(1, min(limit, KANBAN_MAX_LIMIT))
    if offset > KANBAN_MAX_OFFSET:
        return [], False
    records = list(
        queryset.filter(stage=stage).order_by(*_window_ordering(queryset))[offset : offset + limit + 1]
    )
    return records[:limit], len(records) > limit


def lead_kanban_cards(
    *,
    user: Actor,
    stage: Stage,
    filters: Filters = None,
    offset: int = 0,
    limit: int = KANBAN_DEFAULT_LIMIT,
) -> tuple[list[Lead], bool]:
    """The leads of one column of the leads board beyond its first cards (see pipeline_kanban_cards)."""
    return pipeline_kanban_cards(
        queryset=lead_list(user=user, filters=filters), stage=stage, offset=offset, limit=limit
    )
