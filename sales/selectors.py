"""Reads that carry rules for the sales app: opportunity lists and board, forecast, dashboard.

The conventions (``user``, ``filters``, visibility in one function) are crm.selectors'. Every figure is
an aggregate computed by the database; Python only arranges the grouped rows.
"""

import datetime
from collections.abc import Callable, Iterable
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Literal

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.db import connection
from django.db.models import (
    BooleanField,
    Case,
    Count,
    DecimalField,
    Exists,
    ExpressionWrapper,
    F,
    Func,
    OuterRef,
    Q,
    QuerySet,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models.functions import Coalesce, TruncMonth, TruncQuarter
from django.utils.functional import SimpleLazyObject

from crm.actors import Actor
from crm.db.aggregates import count_rows
from crm.filters import filter_queryset
from crm.models import Lead, LeadRollup, Pipeline, Stage, StageTiming
from crm.selectors import (
    KANBAN_DEFAULT_LIMIT,
    Filters,
    KanbanBoard,
    lead_visible_to,
    owned_records_editable_by,
    owned_records_visible_listed,
    owned_records_visible_owners,
    owned_records_visible_owners_listed,
    owned_records_visible_to,
    pipeline_for_board,
    pipeline_kanban,
    pipeline_kanban_cards,
    priority_rank,
    register_record_access,
    rollup_board_totals,
    same_for_every_reader,
    tags_prefetch,
)
from sales.currencies import MIXED, conversion_note, converted, month_bounds, monthly_rates
from sales.filters import OpportunityFilter
from sales.models import (
    Opportunity,
    OpportunityBoardRollup,
    OpportunityRollup,
    OpportunityStageChange,
    OpportunityStatus,
    WonFromLeadRollup,
    company_currency,
)
from sales.quotas import quota_attainment_of, quota_targets, user_is_person

CENT = Decimal("0.01")
MONEY = DecimalField(max_digits=20, decimal_places=2)
# Weighted amounts keep four places until they are summed, then round to cents once.
WEIGHTED = DecimalField(max_digits=24, decimal_places=4)

GroupBy = Literal["month", "quarter", "stage", "owner"]
GROUP_BY_CHOICES = ("month", "quarter", "stage", "owner")


def opportunity_visible_to(user: Actor) -> QuerySet[Opportunity]:
    return owned_records_visible_to(Opportunity.objects.all(), user)


def opportunity_editable_by(user: Actor) -> QuerySet[Opportunity]:
    # Seeing a deal through a territory (CRM_TERRITORY_VISIBILITY) does not make it one's to change.
    return owned_records_editable_by(Opportunity.objects.all(), user)


register_record_access(
    Opportunity,
    visible_to=opportunity_visible_to,
    editable_by=opportunity_editable_by,
    listed=owned_records_visible_listed,
)


def opportunity_annotate_stage_time(queryset: QuerySet[Opportunity]) -> QuerySet[Opportunity]:
    """When each deal entered its stage (its latest stage change) and the stage's usual time: what
    ``Opportunity.is_rotting`` needs, without a query per row. Both are subqueries, not joins: a join
    to the stage and its timing stays in every query of the list (its count too) and makes its plan
    costlier to find (crm.api.listing.ListRows.queryset)."""
    entered = Subquery(
        OpportunityStageChange.objects.filter(record=OuterRef("pk"))
        .order_by("-changed_at", "-pk")
        .values("changed_at")[:1]
    )
    usual = Subquery(StageTiming.objects.filter(stage_id=OuterRef("stage_id")).values("usual_days")[:1])
    return queryset.annotate(stage_entered_at=entered, stage_usual_days=usual)


@same_for_every_reader
def opportunity_list(*, user: Actor, filters: Filters = None) -> QuerySet[Opportunity]:
    queryset = opportunity_annotate_stage_time(
        opportunity_visible_to(user)
        .select_related("pipeline", "stage", "account", "contact", "owner", "lost_reason")
        .prefetch_related(tags_prefetch())
        .annotate(priority_rank=priority_rank())
    )
    return filter_queryset(OpportunityFilter, queryset, filters, reader=user)


def opportunity_kanban(
    *,
    user: Actor,
    pipeline: Pipeline | None = None,
    filters: Filters = None,
    limit: int = KANBAN_DEFAULT_LIMIT,
    cards: Callable[[QuerySet], Iterable] | None = None,
) -> KanbanBoard:
    """The opportunities board of ``pipeline`` (default: the default pipeline); ``total`` sums amount.
    ``cards``: see ``crm.selectors.pipeline_kanban``."""
    return pipeline_kanban(
        queryset=opportunity_list(user=user, filters=filters),
        pipeline=pipeline_for_board(pipeline),
        value_field="amount",
        limit=limit,
        column_totals=rollup_board_totals(
            OpportunityBoardRollup,
            user=user,
            model=Opportunity,
            sum_field="amount_cents",
            filters=filters,
            # The board's rollup keeps deals by pipeline, stage and owner alone.
            columns={"owner": "owner_id", "stage": "stage_id"},
        ),
        cards=cards,
    )


# --- figures from the rollups ----------------------------------------------------------------------
# Pages without filters beyond pipeline and owner read the rollups (sales.rollups, crm.rollups): a few
# hundred rows whatever the tables' size. A rep's figures sum the owners they see; where visibility is
# not a matter of owners (a territory grant), the records are counted as before.


def _rollup_visible_to(
    rollup: QuerySet, model, user: Actor, pipeline: Pipeline | None, *, listed: bool = False
) -> QuerySet | None:
    owners = (owned_records_visible_owners_listed if listed else owned_records_visible_owners)(model, user)
    if owners is None:
        return None
    rollup = rollup.filter(owners)
    return rollup if pipeline is None else rollup.filter(pipeline_id=pipeline.pk)


def opportunity_rollup_visible_to(*, user: Actor, pipeline: Pipeline | None = None) -> QuerySet | None:
    # Rows by owner and close month (110,000 at 5M leads): the owners listed, read from its owner index.
    return _rollup_visible_to(OpportunityRollup.objects.all(), Opportunity, user, pipeline, listed=True)


def lead_rollup_visible_to(*, user: Actor, pipeline: Pipeline | None = None) -> QuerySet | None:
    return _rollup_visible_to(LeadRollup.objects.all(), Lead, user, pipeline)


def _cents(value) -> Decimal:
    return Decimal(value or 0) / 100


# Past this many (currency, month) pairs in which a rate changes, the deals in other currencies are
# all converted one by one: the query's OR of month ranges would cost more than reading them.
MAX_MIXED_MONTHS = 24


def _with_rate_month(rollup: QuerySet) -> QuerySet:
    """``rate_month``: the close month of rollup rows in another currency (0 for the company currency's,
    which need no rate), so that each foreign month can be converted at its rate."""
    return rollup.annotate(
        rate_month=Case(When(currency=company_currency(), then=Value(0)), default=F("close_month"))
    )


def _split_currencies(
    rows: list[dict], live: QuerySet, group: list[str], figures: dict[str, Any]
) -> tuple[list[dict], list[dict]]:
    """Rollup rows (``group`` columns, ``currency``, ``rate_month`` and the summed ``n``, ``cents`` and
    maybe ``weighted``) as rows in the company currency, and ``figures`` (the live query's aggregates)
    computed by the database for the deals the rollup cannot convert.

    A deal converts at the rate in force on its close date. Where a currency's rate does not change
    inside a close month, every deal of that month converts at one rate, so the month's sums convert
    at once (``monthly_rates``). Only the months in which a rate comes into force after the first day
    are read live, those deals converted one by one; in most companies none are, and ``live`` is not
    read at all."""
    company = company_currency()
    kept = [row for row in rows if row["currency"] == company]
    foreign = [row for row in rows if row["currency"] != company and row["n"]]
    if not foreign:
        return kept, []
    rates = monthly_rates((row["currency"], row["rate_month"]) for row in foreign)
    mixed = sorted(pair for pair, rate in rates.items() if rate == MIXED)
    if len(mixed) > MAX_MIXED_MONTHS:
        return kept, list(live.exclude(currency=company).order_by().values(*group).annotate(**figures))
    for row in foreign:
        rate = rates[row["currency"], row["rate_month"]]
        if rate == MIXED:
            continue
        # No rate in force: the deals count, their amounts are left out of the sums (as live SQL does).
        factor = rate if rate is not None else 0
        kept.append(
            {**row, **{name: (row[name] or 0) * factor for name in ("cents", "weighted") if name in row}}
        )
    if not mixed:
        return kept, []
    months = Q()
    for currency, month in mixed:
        months |= Q(currency=currency, close_date__range=month_bounds(month))
    return kept, list(live.filter(months).order_by().values(*group).annotate(**figures))


def _money(value: Decimal | None) -> Decimal:
    return (value or Decimal("0")).quantize(CENT, rounding=ROUND_HALF_UP)


def _zero() -> Value:
    return Value(Decimal("0"))


def _group_expression(group_by: GroupBy):
    if group_by == "month":
        return TruncMonth("close_date")
    if group_by == "quarter":
        return TruncQuarter("close_date")
    if group_by == "stage":
        return F("stage_id")
    return F("owner_id")


def _group_key_and_label(group_by: GroupBy, value, labels: dict) -> tuple[Any, str]:
    if value is None:
        return None, "No close date" if group_by in ("month", "quarter") else "Unassigned"
    if group_by == "month":
        return f"{value:%Y-%m}", f"{value:%B %Y}"
    if group_by == "quarter":
        quarter = (value.month - 1) // 3 + 1
        return f"{value.year}-Q{quarter}", f"Q{quarter} {value.year}"
    return value, labels.get(value, str(value))


def forecast(
    *,
    user: Actor,
    pipeline: Pipeline | None = None,
    owner: Any = None,
    date_from: datetime.date | None = None,
    date_to: datetime.date | None = None,
    group_by: GroupBy = "month",
) -> dict[str, Any]:
    """Open pipeline value, probability-weighted value and won value, grouped, for a period.

    Open figures cover open opportunities whose close date falls in [date_from, date_to]; with no
    range, open opportunities without a close date are included, in a group whose key is None.
    Weighted amount = amount × probability / 100 over open opportunities. Won figures cover
    opportunities won with a close date in the range. ``pipeline`` and ``owner`` narrow everything;
    none means all pipelines, every owner. Groups come in time order (month, quarter), stage order
    or owner name order, the None group last.
    """
    if group_by not in GROUP_BY_CHOICES:
        raise ValueError(f"group_by must be one of {GROUP_BY_CHOICES}, not {group_by!r}")
    queryset = opportunity_visible_to(user)
    if pipeline is not None:
        queryset = queryset.filter(pipeline=pipeline)
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    if date_from is not None:
        queryset = queryset.filter(close_date__gte=date_from)
    if date_to is not None:
        queryset = queryset.filter(close_date__lte=date_to)

    # Every amount in the company currency, at the rate in force on the deal's close date.
    amount = converted()
    weighted = ExpressionWrapper(
        converted() * F("probability") * Value(Decimal("0.01")), output_field=WEIGHTED
    )
    is_open = Q(status=OpportunityStatus.OPEN)
    is_won = Q(status=OpportunityStatus.WON)
    # Aliases must not be field names: F("amount") inside the weighted sum would mean the alias.
    figures = {
        "open_count": count_rows(filter=is_open),
        "open_amount": Coalesce(Sum(amount, filter=is_open), _zero(), output_field=MONEY),
        "open_weighted": Coalesce(Sum(weighted, filter=is_open), _zero(), output_field=WEIGHTED),
        "won_total": count_rows(filter=is_won),
        "won_value": Coalesce(Sum(amount, filter=is_won), _zero(), output_field=MONEY),
    }
    queryset = queryset.filter(is_open | is_won)
    rows = _forecast_rows_from_rollup(
        user=user,
        pipeline=pipeline,
        owner=owner,
        date_from=date_from,
        date_to=date_to,
        group_by=group_by,
        live=queryset,
        figures=figures,
    )
    if rows is None:
        rows = list(
            queryset.annotate(group=_group_expression(group_by))
            .order_by()
            .values("group")
            .annotate(**figures)
        )
    labels, order = _group_labels(
        group_by, [row["group"] for row in rows if row["group"] is not None], pipeline
    )

    groups = []
    for row in rows:
        key, label = _group_key_and_label(group_by, row["group"], labels)
        is_null = row["group"] is None
        groups.append(
            {
                "key": key,
                "label": label,
                **_forecast_figures(row),
                "_order": (is_null, () if is_null else order.get(row["group"], ())),
            }
        )
    groups.sort(key=lambda group: group.pop("_order"))
    # The groups partition the rows, so the totals are their sums (before rounding, as one query
    # over every row would add them), not a second pass over the table.
    total_row = {name: sum((row[name] or 0 for row in rows), 0) for name in figures}
    totals = _forecast_figures(total_row)
    # The target line: the quotas of the owner (else of the teams the reader sees) for each period.
    totals["target_amount"] = None
    for group in groups:
        group["target_amount"] = None
    if group_by in ("month", "quarter"):
        targets = quota_targets(
            user=user,
            owner=owner,
            period=group_by,
            starts=[row["group"] for row in rows if row["group"] is not None],
        )
        for group in groups:
            target = targets.get(_period_start_of(group["key"]))
            group["target_amount"] = _money(target) if target is not None else None
        if targets:
            totals["target_amount"] = _money(sum(targets.values(), Decimal("0")))
    return {
        "currency": company_currency(),
        "conversion": conversion_note(),
        "totals": totals,
        "groups": groups,
    }


def _month_of(day: datetime.date) -> int:
    return day.year * 100 + day.month


def _group_of_rollup(group_by: GroupBy, value: int) -> Any:
    """A rollup key as the live query groups it: the first day of the month or quarter, the stage
    id, the owner id (None for no close date or no owner)."""
    if not value:
        return None
    if group_by == "month":
        return datetime.date(value // 100, value % 100, 1)
    if group_by == "quarter":
        return datetime.date(value // 100, (value % 100 - 1) // 3 * 3 + 1, 1)
    return value


def _forecast_rows_from_rollup(
    *,
    user: Actor,
    pipeline: Pipeline | None,
    owner: Any,
    date_from: datetime.date | None,
    date_to: datetime.date | None,
    group_by: GroupBy,
    live: QuerySet,
    figures: dict[str, Any],
) -> list[dict[str, Any]] | None:
    """The forecast's grouped rows from the rollup, or None when it cannot answer: a range that does
    not start and end on whole months (the rollup knows close months, not days), or visibility that is
    not a matter of owners. Deals in another currency convert per close month (``_split_currencies``)."""
    if date_from is not None and date_from.day != 1:
        return None
    if date_to is not None and (date_to + datetime.timedelta(days=1)).day != 1:
        return None
    rollup = opportunity_rollup_visible_to(user=user, pipeline=pipeline)
    if rollup is None:
        return None
    rollup = rollup.filter(status__in=[OpportunityStatus.OPEN, OpportunityStatus.WON])
    if owner is not None:
        rollup = rollup.filter(owner_id=owner.pk)
    if date_from is not None:
        rollup = rollup.filter(close_month__gte=_month_of(date_from))
    if date_to is not None:
        rollup = rollup.filter(close_month__lte=_month_of(date_to), close_month__gt=0)
    column = {"month": "close_month", "quarter": "close_month", "stage": "stage_id", "owner": "owner_id"}[
        group_by
    ]
    kept, foreign = _split_currencies(
        list(
            _with_rate_month(rollup)
            .order_by()
            .values(column, "status", "currency", "rate_month")
            .annotate(n=Sum("n"), cents=Sum("amount_cents"), weighted=Sum("weighted_cents_percent"))
        ),
        live.annotate(group=_group_expression(group_by)),
        ["group"],
        figures,
    )
    rows: dict[Any, dict[str, Any]] = {}
    for row in kept:
        if not row["n"]:
            continue
        group = _group_of_rollup(group_by, row[column])
        totals = rows.setdefault(group, {"group": group, **dict.fromkeys(figures, 0)})
        if row["status"] == OpportunityStatus.OPEN:
            totals["open_count"] += row["n"]
            totals["open_amount"] += _cents(row["cents"])
            totals["open_weighted"] += Decimal(row["weighted"] or 0) / 10000
        else:
            totals["won_total"] += row["n"]
            totals["won_value"] += _cents(row["cents"])
    for row in foreign:
        totals = rows.setdefault(row["group"], {"group": row["group"], **dict.fromkeys(figures, 0)})
        for name in figures:
            totals[name] += row[name] or 0
    return list(rows.values())


def _period_start_of(key: str | None) -> datetime.date | None:
    """The first day of a month ("2026-12") or quarter ("2026-Q4") group."""
    if key is None:
        return None
    year, _, rest = key.partition("-")
    if rest.startswith("Q"):
        return datetime.date(int(year), (int(rest[1:]) - 1) * 3 + 1, 1)
    return datetime.date(int(year), int(rest), 1)


def _forecast_figures(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "count": row["open_count"],
        "amount": _money(row["open_amount"]),
        "weighted_amount": _money(row["open_weighted"]),
        "won_count": row["won_total"],
        "won_amount": _money(row["won_value"]),
    }


def _group_labels(group_by: GroupBy, values: list, pipeline: Pipeline | None) -> tuple[dict, dict]:
    """Labels and sort keys for the groups' values (one query for stages or owners)."""
    if group_by in ("month", "quarter"):
        return {}, {value: (value,) for value in values}
    if group_by == "stage":
        stages = Stage.objects.filter(pk__in=values).select_related("pipeline")
        labels = {s.pk: s.name if pipeline is not None else f"{s.pipeline.name} › {s.name}" for s in stages}
        order = {
            s.pk: (s.pipeline.sequence, s.pipeline.name, s.pipeline_id, s.sequence, s.pk) for s in stages
        }
        return labels, order
    users = get_user_model().objects.filter(pk__in=values)
    labels = {u.pk: u.get_username() for u in users}
    return labels, {pk: (label.lower(), pk) for pk, label in labels.items()}


def dashboard(
    *, user: Actor, pipeline: Pipeline | None = None, lead_totals: tuple[int, int] | None = None
) -> dict[str, Any]:
    """The back-office KPIs, for one pipeline or (by default) all of them.

    total_leads; open and won opportunities (count and summed amount); conversion_rate = converted
    leads / all leads × 100, two decimals (0 without leads); pipeline_distribution = every stage
    (of ``pipeline``, else of every active pipeline) in board order with the count and summed amount
    of the opportunities in it. ``lead_totals`` — (all leads, converted leads) of the same user and
    pipeline, when the caller has counted them already (the admin dashboard's funnel does): a
    million leads are then read once per page, not twice.
    """

    def in_pipeline(queryset: QuerySet) -> QuerySet:
        return queryset.filter(pipeline=pipeline) if pipeline is not None else queryset

    # Built only where read: the rollups answer most pages, and building the visibility rule's
    # subqueries costs a millisecond a queryset.
    leads = SimpleLazyObject(lambda: in_pipeline(lead_visible_to(user)))
    opportunities = SimpleLazyObject(lambda: in_pipeline(opportunity_visible_to(user)))
    stages = Stage.objects.select_related("pipeline")
    if pipeline is not None:
        stages = stages.filter(pipeline=pipeline)
    else:
        stages = stages.filter(pipeline__is_active=True)
    stages = stages.order_by("pipeline__sequence", "pipeline__name", "pipeline_id", "sequence", "id")

    lead_rollup = lead_rollup_visible_to(user=user, pipeline=pipeline)
    if lead_totals is not None:
        lead_figures = {"total": lead_totals[0], "converted": lead_totals[1]}
    else:
        if lead_rollup is not None:
            by_status = lead_rollup.order_by().values("status").annotate(n=Sum("n"))
        else:
            # Counted per status with COUNT(*): PostgreSQL reads the smallest index that has the status.
            by_status = leads.order_by().values("status").annotate(n=Count("*"))
        by_status = dict(by_status.values_list("status", "n"))
        lead_figures = {"total": sum(by_status.values()), "converted": by_status.get("converted", 0)}
    # One pass over the opportunities (or their rollup) by stage and status: the per-stage
    # distribution and the open and won figures are sums of its rows.
    figures = {"open_count": 0, "open_value": Decimal("0"), "won_count": 0, "won_value": Decimal("0")}
    per_stage: dict[int, dict[str, Any]] = {}
    live_figures = {"count": Count("*"), "value": Coalesce(Sum(converted()), _zero(), output_field=MONEY)}
    rollup = opportunity_rollup_visible_to(user=user, pipeline=pipeline)
    if rollup is None:
        rows = list(opportunities.order_by().values("stage_id", "status").annotate(**live_figures))
    else:
        kept, rows = _split_currencies(
            list(
                _with_rate_month(rollup)
                .order_by()
                .values("stage_id", "status", "currency", "rate_month")
                .annotate(n=Sum("n"), cents=Sum("amount_cents"))
            ),
            opportunities,
            ["stage_id", "status"],
            live_figures,
        )
        rows += [{**row, "count": row["n"], "value": _cents(row["cents"])} for row in kept]
    for row in rows:
        stage = per_stage.setdefault(row["stage_id"], {"count": 0, "value": Decimal("0")})
        stage["count"] += row["count"]
        stage["value"] += row["value"]
        if row["status"] in (OpportunityStatus.OPEN, OpportunityStatus.WON):
            figures[f"{row['status']}_count"] += row["count"]
            figures[f"{row['status']}_value"] += row["value"]
    total_leads = lead_figures["total"]
    conversion_rate = (
        float((Decimal(lead_figures["converted"]) * 100 / total_leads).quantize(CENT, rounding=ROUND_HALF_UP))
        if total_leads
        else 0.0
    )
    return {
        "currency": company_currency(),
        "conversion": conversion_note(),
        "my_attainment": quota_attainment_of(user=user, holder=user) if user_is_person(user) else [],
        "total_leads": total_leads,
        "open_opportunities": {"count": figures["open_count"], "value": _money(figures["open_value"])},
        "won_opportunities": {"count": figures["won_count"], "value": _money(figures["won_value"])},
        "conversion_rate": conversion_rate,
        "pipeline_distribution": [
            {
                "stage_id": stage.pk,
                "stage_name": stage.name,
                "pipeline_id": stage.pipeline_id,
                "pipeline_name": stage.pipeline.name,
                "count": per_stage.get(stage.pk, {}).get("count", 0),
                "value": _money(per_stage.get(stage.pk, {}).get("value")),
            }
            for stage in stages
        ],
    }


def _in_stages(stages: QuerySet[Stage]):
    """Whether a row's stage is one of ``stages``. On PostgreSQL ``stage_id = ANY(ARRAY(...))``: the
    stages are read once, before the scan, which keeps the scan parallel; elsewhere an EXISTS."""
    if connection.vendor == "postgresql":
        return Func(
            F("stage_id"),
            ArraySubquery(stages.values("pk")),
            template="(%(expressions)s))",
            arg_joiner=" = ANY(",
            output_field=BooleanField(),
        )
    return Exists(stages.filter(pk=OuterRef("stage_id")))


class _PerGroup(ExpressionWrapper):
    """An expression of grouped columns (or of none) in a grouped query: computed once per group,
    so it stays out of GROUP BY (which would compute it once per row, before grouping)."""

    def __init__(self, expression):
        super().__init__(expression, output_field=expression.output_field)

    def get_group_by_cols(self):
        return []


def conversion_funnel(*, user: Actor, pipeline: Pipeline | None = None) -> list[dict[str, Any]]:
    """Lead-to-deal funnel: leads → qualified → converted → won, counted by the database in one query.

    Qualified = converted, or open past the first open stage of its pipeline. Until stage history
    exists a lost lead counts as not qualified, wherever it was lost. Won = the leads whose converted
    opportunity is won. Each step has its count, its share of all leads and of the step before (in
    percent, two decimals; 0 when the base is 0), and a value: expected revenue for the lead steps,
    the won opportunities' amount for the last.
    """
    # The stages past their pipeline's first open stage: a handful of rows, matched once per query
    # rather than once per lead.
    first_open_sequence = Subquery(
        Stage.objects.filter(pipeline=OuterRef("pipeline"), is_won=False, is_lost=False)
        .order_by("sequence", "id")
        .values("sequence")[:1]
    )
    later_stages = Stage.objects.annotate(first_open_sequence=first_open_sequence).filter(
        sequence__gt=F("first_open_sequence")
    )
    lead_rollup = lead_rollup_visible_to(user=user, pipeline=pipeline)
    if lead_rollup is not None:
        grouped = [
            {**group, "value": _cents(group["cents"])}
            for group in _funnel_groups_from_rollups(
                lead_rollup, later_stages, _won_from_visible_leads(user, pipeline)
            )
        ]
    else:
        leads = lead_visible_to(user)
        if pipeline is not None:
            leads = leads.filter(pipeline=pipeline)
        # The won deals that came from these leads, read from the opportunities (a fifth of the rows):
        # uncorrelated subqueries, which PostgreSQL runs once for the whole query.
        # Every lead counts (no visibility or pipeline condition): any deal converted from a lead will do.
        from_leads = (
            Q(lead__isnull=False) if not leads.query.where.children else Q(lead__in=leads.values("pk"))
        )
        won_deals = (
            Opportunity.objects.filter(from_leads, status=OpportunityStatus.WON).order_by().values("status")
        )
        won_count = won_deals.annotate(n=Count("pk")).values("n")
        won_value = won_deals.annotate(total=Sum(converted())).values("total")
        # One pass over the leads grouped by status and stage (a few dozen rows; PostgreSQL can read
        # the stage index alone, which carries status, revenue, owner and pipeline). Whether a stage is
        # past its pipeline's first open one is asked once per group, not once per lead.
        grouped = (
            leads.order_by()
            .values("status", "stage_id")
            .annotate(
                count=count_rows(),
                value=Sum("expected_revenue"),
                later_stage=_PerGroup(_in_stages(later_stages)),
                won=_PerGroup(Coalesce(Subquery(won_count), 0)),
                won_value=_PerGroup(
                    Coalesce(Subquery(won_value, output_field=MONEY), _zero(), output_field=MONEY)
                ),
            )
        )
    row = dict.fromkeys(("leads", "qualified", "converted", "won"), 0)
    row.update(
        dict.fromkeys(("leads_value", "qualified_value", "converted_value", "won_value"), Decimal("0"))
    )
    for group in grouped:
        counted_in = ["leads"]
        if group["status"] == "converted":
            counted_in += ["qualified", "converted"]
        elif group["status"] == "open" and group["later_stage"]:
            counted_in.append("qualified")
        for step in counted_in:
            row[step] += group["count"]
            row[f"{step}_value"] += group["value"] or Decimal("0")
        row["won"], row["won_value"] = group["won"], group["won_value"]
    labels = {
        "leads": "Leads",
        "qualified": "Qualified",
        "converted": "Converted",
        "won": "Won deals from these leads",
    }
    steps: list[dict[str, Any]] = []
    for key, label in labels.items():
        count = row[key]
        previous = steps[-1]["count"] if steps else count
        steps.append(
            {
                "key": key,
                "label": label,
                "count": count,
                "value": _money(row[f"{key}_value"]),
                "percent_of_total": _percent(count, row["leads"]),
                "percent_of_previous": _percent(count, previous),
            }
        )
    return steps


def _won_from_visible_leads(user: Actor, pipeline: Pipeline | None) -> dict[str, Any]:
    """The count and value of the won deals from the leads ``user`` sees, where that is a matter of
    owners (the rollups' case), from the won deals from leads by the lead's owner and pipeline
    (``sales.rollups.WON_FROM_LEAD_ROLLUP``: 2,320 rows at 1M leads, 11,328 at 5M, where the deals'
    rollup holds 112,039 to filter). Another currency converts a close month at a time
    (``_split_currencies``)."""
    won = Opportunity.objects.filter(lead__isnull=False, status=OpportunityStatus.WON)
    rule = owned_records_visible_owners_listed(Lead, user, "lead_owner_id")
    if rule is None:  # a grant widens who sees leads: the funnel then counts its leads live
        raise ValueError("The won deals from leads are read from the rollup only by owner.")
    rows = WonFromLeadRollup.objects.filter(rule)
    # The same deals, read live for the months the rollup cannot convert: the listed owners' leads and
    # the leads without an owner (the rollup's 0), or every lead (``Q()``).
    owners = dict(rule.children).get("lead_owner_id__in")
    if owners is not None:
        won = won.filter(Q(lead__owner__isnull=True) | Q(lead__owner__in=[pk for pk in owners if pk]))
    if pipeline is not None:
        rows = rows.filter(lead_pipeline_id=pipeline.pk)
        won = won.filter(lead__pipeline=pipeline)
    kept, counted = _split_currencies(
        list(
            _with_rate_month(rows)
            .order_by()
            .values("currency", "rate_month")
            .annotate(n=Sum("n"), cents=Sum("amount_cents"))
        ),
        won,
        ["status"],
        {"n": count_rows(), "value": Sum(converted())},
    )
    return {
        "won": sum(row["n"] or 0 for row in kept + counted),
        "won_value": sum((_cents(row["cents"]) for row in kept), Decimal("0"))
        + sum((row["value"] or Decimal("0") for row in counted), Decimal("0")),
    }


def _funnel_groups_from_rollups(
    lead_rollup: QuerySet, later_stages: QuerySet[Stage], won: dict[str, Any]
) -> list[dict[str, Any]]:
    """The funnel's groups (status and stage of the leads) from the lead rollup, in one query as the
    live one, each with the won deals from those leads (``won``, read before)."""
    groups = (
        lead_rollup.order_by()
        .values("status", "stage_id")
        .annotate(
            count=Sum("n"),
            cents=Sum("expected_revenue_cents"),
            later_stage=_PerGroup(_in_stages(later_stages)),
        )
        .filter(count__gt=0)
    )
    return [{**group, **won} for group in groups]


def _percent(part: int, whole: int) -> float:
    if not whole:
        return 0.0
    return float((Decimal(part) * 100 / whole).quantize(CENT, rounding=ROUND_HALF_UP))


def opportunity_recent_won(
    *, user: Actor, pipeline: Pipeline | None = None, limit: int = 5
) -> QuerySet[Opportunity]:
    """The last deals won, most recently closed first, with their account and owner."""
    queryset = opportunity_visible_to(user).filter(status=OpportunityStatus.WON)
    if pipeline is not None:
        queryset = queryset.filter(pipeline=pipeline)
    return queryset.select_related("account", "owner", "stage").order_by("-closed_at", "-pk")[:limit]


def opportunity_kanban_cards(
    *,
    user: Actor,
    stage: Stage,
    filters: Filters = None,
    offset: int = 0,
    limit: int = KANBAN_DEFAULT_LIMIT,
) -> tuple[list[Opportunity], bool]:
    """The opportunities of one column of the board beyond its first cards."""
    return pipeline_kanban_cards(
        queryset=opportunity_list(user=user, filters=filters), stage=stage, offset=offset, limit=limit
    )
