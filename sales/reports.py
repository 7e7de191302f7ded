"""The standard reports over deals and the leads they come from (sales owns the figures): conversion
funnel, pipeline velocity, cycle length and time in stage, revenue, win/loss, customer lifetime value,
lead source effectiveness. Registered with crm's report registry, which renders and exports them.

Every report reads only what its reader sees (the visibility selectors), converts amounts into the
company currency at the rate in force on each deal's close date (``sales.currencies.converted``), and
costs a fixed number of queries: the grouping is done by the database, Python arranges a few rows.
"""

import datetime
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db.models import (
    Case,
    Count,
    DurationField,
    ExpressionWrapper,
    F,
    IntegerField,
    Max,
    Min,
    Q,
    QuerySet,
    Sum,
    Value,
    When,
    Window,
)
from django.db.models.functions import Coalesce, RowNumber, TruncMonth, TruncQuarter, TruncYear
from django.db.models.functions import Lead as NextRow
from django.utils import timezone

from crm.actors import Actor
from crm.db.aggregates import count_rows
from crm.models import (
    Account,
    AccountType,
    Campaign,
    Industry,
    LeadSource,
    LeadStatus,
    LostReason,
    Pipeline,
    Priority,
    Stage,
)
from crm.reports import (
    DATE,
    INTEGER,
    MONEY,
    NUMBER,
    PERCENT,
    TEXT,
    Column,
    ReportDefinition,
    ReportFilters,
    ReportResult,
    as_date,
    as_duration,
    register_report,
    rows_over,
)
from crm.reports.builder import (
    CHOICE,
    DATE_KIND,
    DATETIME,
    FOREIGN_KEY,
    BuilderField,
    ReportSource,
    register_report_source,
)
from crm.selectors import lead_visible_to, user_sees_everything
from sales.currencies import CONVERTED, conversion_note, converted
from sales.filters import OpportunityFilter
from sales.models import (
    Opportunity,
    OpportunityStageChange,
    OpportunityStatus,
    OpportunityType,
    company_currency,
)
from sales.selectors import opportunity_visible_to

CENT = Decimal("0.01")
MAX_TREND_MONTHS = 60
DAY = 86400
DEALS = ("sales.view_opportunity",)
LEADS_AND_DEALS = ("crm.view_lead", "sales.view_opportunity")
TRUNC = {"month": TruncMonth, "quarter": TruncQuarter, "year": TruncYear}
SIZE_BANDS = (
    (Decimal("1000"), "under 1,000"),
    (Decimal("10000"), "1,000 – 9,999"),
    (Decimal("50000"), "10,000 – 49,999"),
    (Decimal("100000"), "50,000 – 99,999"),
    (None, "100,000 and more"),
)


def _money(value) -> Decimal:
    return Decimal(value or 0).quantize(CENT, rounding=ROUND_HALF_UP)


def percent(part, whole) -> float | None:
    if not whole:
        return None
    return float((Decimal(part) * 100 / Decimal(whole)).quantize(CENT, rounding=ROUND_HALF_UP))


def _days(duration: datetime.timedelta | None, count: int) -> float | None:
    if not count or duration is None:
        return None
    return round(duration.total_seconds() / DAY / count, 1)


def _cohort_label(value, cohort: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, datetime.datetime):
        value = timezone.localtime(value).date() if timezone.is_aware(value) else value.date()
    if cohort == "year":
        return f"{value.year}"
    if cohort == "quarter":
        return f"{value.year}-Q{(value.month - 1) // 3 + 1}"
    return f"{value:%Y-%m}"


def report_deals(user: Actor, filters: ReportFilters) -> QuerySet[Opportunity]:
    """The deals ``user`` sees, narrowed by pipeline, owner (or team) and source (of their lead)."""
    deals = opportunity_visible_to(user).filter(filters.owner_q())
    if filters.pipeline is not None:
        deals = deals.filter(pipeline=filters.pipeline)
    if filters.source:
        deals = deals.filter(lead__source=filters.source)
    return deals.order_by()


def _leads(user: Actor, filters: ReportFilters):
    leads = lead_visible_to(user).filter(filters.owner_q())
    if filters.pipeline is not None:
        leads = leads.filter(pipeline=filters.pipeline)
    if filters.source:
        leads = leads.filter(source=filters.source)
    return leads.order_by()


def _usernames(ids) -> dict[int, str]:
    ids = [pk for pk in ids if pk is not None]
    return dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}


def _cycle() -> ExpressionWrapper:
    return ExpressionWrapper(F("closed_at") - F("created_at"), output_field=DurationField())


def _default_months(filters: ReportFilters) -> tuple[datetime.date, datetime.date]:
    """The period of a trend, in whole months: the filters', else the twelve months up to this one."""
    end = filters.date_to or timezone.localdate()
    if filters.date_from is not None:
        start = filters.date_from.replace(day=1)
    else:
        start = datetime.date(end.year - (end.month < 12), end.month % 12 + 1, 1)
    if (end.year - start.year) * 12 + end.month - start.month >= MAX_TREND_MONTHS:
        raise ValidationError({"date_from": f"A trend covers at most {MAX_TREND_MONTHS} months."})
    return start, end


def _months(start: datetime.date, end: datetime.date) -> list[datetime.date]:
    months, day = [], start.replace(day=1)
    while day <= end:
        months.append(day)
        day = datetime.date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return months


# --- conversion funnel ----------------------------------------------------------------------------


def funnel_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """How many records of a cohort (created in the same month, quarter or year) reached each stage.

    A record reached a stage when its stage history (or its current stage) took it to that stage or a
    later one (by sequence; a lost stage counts for nothing): a deal won straight from New reached every
    stage. The first stage counts every record of the cohort. Conversion = reached the next stage /
    reached this one; drop-off = 100 − conversion.
    """
    pipeline = filters.pipeline or Pipeline.objects.default()
    notes = [
        "Reached: the record's stage history or current stage took it to this stage or a later one "
        "(a lost stage counts for nothing). Conversion = reached the next stage / reached this one; "
        "drop-off = 100 − conversion. Cohort: the month, quarter or year the record was created in; the "
        "period applies to the creation date."
    ]
    columns = [
        Column("cohort", "Cohort"),
        Column("stage", "Stage"),
        Column("reached", "Reached", INTEGER),
        Column("percent_of_first", "% of first stage", PERCENT),
        Column("conversion", "Conversion to next %", PERCENT),
        Column("drop_off", "Drop-off %", PERCENT),
    ]
    if pipeline is None:
        return ReportResult(columns, [], notes=["No pipeline."])
    stages = list(
        Stage.objects.filter(pipeline=pipeline, is_lost=False)
        .order_by("sequence", "id")
        .values("name", "sequence")
    )
    records = _leads(user, filters) if filters.kind == "lead" else report_deals(user, filters)
    records = records.filter(filters.period_q("created_at", instant=True), pipeline=pipeline)
    if pipeline.reach_stale:
        grouped = _reached_from_history(records, pipeline, filters.cohort)
    else:
        # Each record carries how far it got (crm.reached): one pass over the records, no history.
        grouped = (
            records.values(
                cohort=TRUNC[filters.cohort]("created_at"), reached=Coalesce("reached_sequence", -1)
            )
            .annotate(n=count_rows())
            .values_list("cohort", "reached", "n")
        )
    per_cohort: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for cohort, reached, count in grouped:
        label = _cohort_label(as_date(cohort), filters.cohort)
        per_cohort[label][reached] += count
        per_cohort["All"][reached] += count
    rows: list[dict[str, Any]] = []
    chart_rows: list[dict[str, Any]] = []
    for cohort in sorted(per_cohort, key=lambda label: (label == "All", label)):
        reached_by = per_cohort[cohort]
        total = sum(reached_by.values())
        counts = [
            total if index == 0 else sum(n for seq, n in reached_by.items() if seq >= stage["sequence"])
            for index, stage in enumerate(stages)
        ]
        for index, stage in enumerate(stages):
            following = counts[index + 1] if index + 1 < len(counts) else None
            conversion = percent(following, counts[index]) if following is not None else None
            row = {
                "cohort": cohort,
                "stage": stage["name"],
                "reached": counts[index],
                "percent_of_first": percent(counts[index], total),
                "conversion": conversion,
                "drop_off": round(100 - conversion, 2) if conversion is not None else None,
            }
            rows.append(row)
            if cohort == "All":
                chart_rows.append({"label": stage["name"], "value": counts[index]})
    total = sum(per_cohort["All"].values()) if "All" in per_cohort else 0
    won = rows[-1]["reached"] if rows and stages else 0
    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "pipeline", "label": "Pipeline", "value": pipeline.name, "kind": TEXT},
            {"key": "records", "label": "Records", "value": total, "kind": INTEGER},
            {
                "key": "reached_last",
                "label": f"Reached {stages[-1]['name']}" if stages else "Reached the end",
                "value": won,
                "kind": INTEGER,
            },
            {
                "key": "overall",
                "label": "Overall conversion %",
                "value": percent(won, total),
                "kind": PERCENT,
            },
        ],
        notes=notes,
        chart={"rows": chart_rows, "label": "label", "value": "value", "kind": INTEGER},
    )


def _reached_from_history(records: QuerySet, pipeline: Pipeline, cohort: str) -> list[tuple]:
    """(cohort, furthest sequence, count) read from the stage history: while ``pipeline`` waits for its
    furthest stages to be recounted after its stages' order changed (crm.reached)."""
    # LeadStageChange or OpportunityStageChange: both are the record's "stage_changes".
    changes = records.model._meta.get_field("stage_changes").related_model
    # The furthest stage of each record's history, grouped once and joined (a subquery per record
    # costs a lookup per record: seconds at a million leads).
    furthest = (
        changes.objects.filter(to_stage__pipeline=pipeline, to_stage__is_lost=False)
        .order_by()
        .values(of_record=F("record_id"))
        .annotate(furthest=Max("to_stage__sequence"))
    )
    current = Case(
        When(stage__is_lost=True, then=Value(-1)), default=F("stage__sequence"), output_field=IntegerField()
    )
    cohorts = records.values(record=F("pk"), cohort=TRUNC[cohort]("created_at"), at_stage=current)
    return rows_over(
        "SELECT r.cohort, CASE WHEN f.furthest > r.at_stage THEN f.furthest ELSE r.at_stage END, COUNT(*) "
        "FROM {cohorts} r LEFT JOIN {furthest} f ON f.of_record = r.record GROUP BY 1, 2",
        cohorts=cohorts,
        furthest=furthest,
    )


# --- pipeline velocity ----------------------------------------------------------------------------


def velocity_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Pipeline velocity = open deals × win rate × average won deal / average cycle (days): the value the
    pipeline turns into revenue per day. Per close month (the trend), then over the whole period."""
    start, end = _default_months(filters)
    months = _months(start, end)
    deals = report_deals(user, filters)
    is_won = Q(status=OpportunityStatus.WON)
    closed = (
        deals.filter(
            status__in=(OpportunityStatus.WON, OpportunityStatus.LOST),
            close_date__gte=start,
            close_date__lte=end,
        )
        .annotate(month=TruncMonth("close_date"))
        .values("month")
        .annotate(
            won=count_rows(filter=is_won),
            lost=count_rows(filter=Q(status=OpportunityStatus.LOST)),
            won_amount=Sum(converted(), filter=is_won),
            cycle=Sum(_cycle(), filter=is_won),
        )
    )
    by_month = {row["month"]: row for row in closed}
    # Deals open at the end of each month (created before it ended, not closed by then): one pass.
    zone = timezone.get_current_timezone()
    now = timezone.now()
    ends = {}
    for month in months:
        following = datetime.date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        ends[month] = min(datetime.datetime.combine(following, datetime.time.min, tzinfo=zone), now)
    open_counts = deals.aggregate(
        **{
            f"m{index}": Count(
                "pk", filter=Q(created_at__lt=moment) & (Q(closed_at__isnull=True) | Q(closed_at__gte=moment))
            )
            for index, moment in enumerate(ends.values())
        },
        open_now=count_rows(filter=Q(status=OpportunityStatus.OPEN)),
    )
    rows = []
    totals = {"won": 0, "lost": 0, "won_amount": Decimal(0), "cycle": datetime.timedelta(0)}
    for index, month in enumerate(months):
        row = by_month.get(month, {})
        won, lost = row.get("won", 0), row.get("lost", 0)
        amount, cycle = row.get("won_amount") or Decimal(0), row.get("cycle") or datetime.timedelta(0)
        totals["won"] += won
        totals["lost"] += lost
        totals["won_amount"] += amount
        totals["cycle"] += cycle
        rows.append(
            {
                "period": f"{month:%Y-%m}",
                "open_deals": open_counts[f"m{index}"],
                **_velocity(open_counts[f"m{index}"], won, lost, amount, cycle),
            }
        )
    overall = _velocity(
        open_counts["open_now"], totals["won"], totals["lost"], totals["won_amount"], totals["cycle"]
    )
    columns = [
        Column("period", "Month"),
        Column("open_deals", "Open deals at month end", INTEGER),
        Column("won", "Won", INTEGER),
        Column("lost", "Lost", INTEGER),
        Column("win_rate", "Win rate %", PERCENT),
        Column("average_won", "Average won deal", MONEY),
        Column("cycle_days", "Average cycle (days)", NUMBER),
        Column("velocity", "Velocity per day", MONEY),
    ]
    return ReportResult(
        columns,
        rows,
        summary=[
            {
                "key": "open_deals",
                "label": "Open deals now",
                "value": open_counts["open_now"],
                "kind": INTEGER,
            },
            {
                "key": "win_rate",
                "label": "Win rate % (period)",
                "value": overall["win_rate"],
                "kind": PERCENT,
            },
            {
                "key": "average_won",
                "label": "Average won deal (period)",
                "value": overall["average_won"],
                "kind": MONEY,
            },
            {
                "key": "cycle_days",
                "label": "Average cycle, days (period)",
                "value": overall["cycle_days"],
                "kind": NUMBER,
            },
            {
                "key": "velocity",
                "label": "Velocity per day (now)",
                "value": overall["velocity"],
                "kind": MONEY,
            },
        ],
        notes=[
            "Velocity = open deals × win rate × average won deal ÷ average sales cycle in days: the value "
            "the pipeline turns into revenue per day. A month's figures use the deals closed in it (by close "
            "date) and the deals open at its end; the summary uses the deals open now and the whole period. "
            f"Cycle: days from creation to win. {conversion_note()}",
            f"Period: {start:%Y-%m-%d} to {end:%Y-%m-%d} (default: the last twelve months).",
        ],
        chart={"rows": rows, "label": "period", "value": "velocity", "kind": MONEY},
    )


def _velocity(open_deals, won, lost, amount, cycle) -> dict[str, Any]:
    win_rate = percent(won, won + lost)
    average = _money(amount / won) if won else None
    cycle_days = _days(cycle, won)
    velocity = None
    if win_rate is not None and average is not None and cycle_days:
        velocity = _money(
            Decimal(open_deals) * Decimal(str(win_rate)) / 100 * average / Decimal(str(cycle_days))
        )
    return {
        "won": won,
        "lost": lost,
        "win_rate": win_rate,
        "average_won": average,
        "cycle_days": cycle_days,
        "velocity": velocity,
    }


# --- cycle length and time in stage ---------------------------------------------------------------


def stage_time_figures(changes: QuerySet, now: datetime.datetime, *, begun: Q | None = None) -> list[dict]:
    """Stays in stages from stage history, grouped by stage: a stay lasts from entering a stage until the
    record's next change; one without a next change is still going (measured until ``now``).

    ``changes`` holds every change of the records in scope (the next change may be any of them);
    ``begun`` narrows the stays counted (the period). Won and lost stages are not stays. One pass: each
    change's next one is the following row of its record's history (a window), not a lookup per change.
    """
    next_change = Window(
        NextRow("changed_at"), partition_by=[F("record_id")], order_by=[F("changed_at").asc(), F("pk").asc()]
    )
    counted = Q(to_stage__isnull=False, to_stage__is_won=False, to_stage__is_lost=False) & (begun or Q())
    stays = (
        changes.order_by()
        .annotate(
            stay=ExpressionWrapper(next_change - F("changed_at"), output_field=DurationField()),
            so_far=ExpressionWrapper(Value(now) - F("changed_at"), output_field=DurationField()),
            counted=Case(When(counted, then=Value(1)), default=Value(0), output_field=IntegerField()),
        )
        .values("to_stage_id", "stay", "so_far", "counted")
    )
    rows = rows_over(
        "SELECT s.to_stage_id, COUNT(s.stay), SUM(s.stay), SUM(CASE WHEN s.stay IS NULL THEN 1 ELSE 0 END), "
        "SUM(CASE WHEN s.stay IS NULL THEN s.so_far END) FROM {stays} s WHERE s.counted = 1 "
        "GROUP BY s.to_stage_id",
        stays=stays,
    )
    return [
        {
            "to_stage_id": stage_id,
            "completed": completed,
            "completed_time": as_duration(completed_time),
            "ongoing": ongoing,
            "ongoing_time": as_duration(ongoing_time),
        }
        for stage_id, completed, completed_time, ongoing, ongoing_time in rows
    ]


def cycle_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Sales cycle of the deals won in the period (by close date), and the time deals spend in each stage
    (stays begun in the period), from stage history."""
    deals = report_deals(user, filters)
    won = deals.filter(filters.period_q("close_date"), status=OpportunityStatus.WON).aggregate(
        count=count_rows(), total=Sum(_cycle()), shortest=Min(_cycle()), longest=Max(_cycle())
    )
    now = timezone.now()
    changes = OpportunityStageChange.objects.filter(record__in=deals.values("pk"))
    begun = filters.period_q("changed_at", instant=True)
    figures = {row["to_stage_id"]: row for row in stage_time_figures(changes, now, begun=begun)}
    stages = (
        Stage.objects.filter(pk__in=figures)
        .select_related("pipeline")
        .order_by("pipeline__sequence", "pipeline__name", "pipeline_id", "sequence", "id")
    )
    rows = []
    for stage in stages:
        row = figures[stage.pk]
        rows.append(
            {
                "stage": stage.name if filters.pipeline else f"{stage.pipeline.name} › {stage.name}",
                "completed": row["completed"],
                "average_days": _days(row["completed_time"], row["completed"]),
                "ongoing": row["ongoing"],
                "ongoing_days": _days(row["ongoing_time"], row["ongoing"]),
            }
        )
    columns = [
        Column("stage", "Stage"),
        Column("completed", "Stays ended", INTEGER),
        Column("average_days", "Average days in stage", NUMBER),
        Column("ongoing", "Still in stage", INTEGER),
        Column("ongoing_days", "Average days so far", NUMBER),
    ]

    def days(value):
        return round(value.total_seconds() / DAY, 1) if value is not None else None

    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "won", "label": "Deals won", "value": won["count"], "kind": INTEGER},
            {
                "key": "average_cycle_days",
                "label": "Average cycle (days)",
                "value": _days(won["total"], won["count"]),
                "kind": NUMBER,
            },
            {
                "key": "shortest_cycle_days",
                "label": "Shortest (days)",
                "value": days(won["shortest"]),
                "kind": NUMBER,
            },
            {
                "key": "longest_cycle_days",
                "label": "Longest (days)",
                "value": days(won["longest"]),
                "kind": NUMBER,
            },
        ],
        notes=[
            "Cycle: days from a deal's creation to its win, over the deals won in the period (close date). "
            "Time in stage: from entering a stage to the deal's next stage change, over the stays begun in "
            "the period; a stay without a next change is still going and is measured until now. Won and "
            "lost stages are not stays."
        ],
        chart={"rows": rows, "label": "stage", "value": "average_days", "kind": NUMBER},
    )


# --- revenue --------------------------------------------------------------------------------------

REVENUE_GROUPS = (
    ("month", "close month"),
    ("quarter", "close quarter"),
    ("source", "lead source"),
    ("owner", "owner"),
    ("industry", "account industry"),
    ("customer", "new vs existing customer"),
    ("type", "deal type"),
    ("campaign", "campaign"),
)


def _customer_groups(deals: QuerySet, filters: ReportFilters) -> list[dict[str, Any]]:
    """Won revenue of the period as "new" (an account's first win among the deals the reader sees, by
    close date then id), "existing" (a later one) or "no account". A deal's rank among its account's
    wins comes from a window over them, not a lookup of an earlier win per deal."""
    undated = Case(
        When(close_date__isnull=True, then=Value(1)), default=Value(0), output_field=IntegerField()
    )
    period = filters.period_q("close_date")
    wins = deals.filter(status=OpportunityStatus.WON).values(
        of_account=F("account_id"),
        undated=undated,
        # A deal without a close date has no earlier win and is no one's earlier win.
        nth=Window(
            RowNumber(),
            partition_by=[F("account_id"), undated],
            order_by=[F("close_date").asc(), F("pk").asc()],
        ),
        value=converted(),
        in_period=Case(When(period, then=Value(1)), default=Value(0), output_field=IntegerField())
        if period
        else Value(1),
    )
    rows = rows_over(
        "SELECT CASE WHEN w.of_account IS NULL THEN 'no account' "
        "WHEN w.undated = 0 AND w.nth > 1 THEN 'existing' ELSE 'new' END, COUNT(*), SUM(w.value) "
        "FROM {wins} w WHERE w.in_period = 1 GROUP BY 1",
        wins=wins,
    )
    return [
        {"group": group, "count": count, "amount": None if amount is None else Decimal(str(amount))}
        for group, count, amount in rows
    ]


def revenue_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Won revenue (deals won with a close date in the period), grouped."""
    group_by = filters.group_by or "month"
    deals = report_deals(user, filters)
    won = deals.filter(filters.period_q("close_date"), status=OpportunityStatus.WON)
    group = {
        "month": TruncMonth("close_date"),
        "quarter": TruncQuarter("close_date"),
        "source": F("lead__source"),
        "owner": F("owner_id"),
        "industry": F("account__industry"),
        "type": F("opportunity_type"),
        "campaign": F("campaign_id"),
        "customer": None,
    }[group_by]
    if group_by == "customer":
        grouped = _customer_groups(deals, filters)
    else:
        grouped = list(
            won.annotate(group=group).values("group").annotate(count=count_rows(), amount=Sum(converted()))
        )
    labels = _labels(group_by, [row["group"] for row in grouped])
    total = sum((row["amount"] or Decimal(0) for row in grouped), Decimal(0))
    rows = [
        {
            "key": _key(group_by, row["group"]),
            "label": labels.get(row["group"], _key(group_by, row["group"]) or "—"),
            "won_count": row["count"],
            "won_amount": _money(row["amount"]),
            "average": _money((row["amount"] or 0) / row["count"]) if row["count"] else None,
            "share": percent(row["amount"] or 0, total),
        }
        for row in grouped
    ]
    if group_by in ("month", "quarter"):
        rows.sort(key=lambda row: row["key"] or "")
    else:
        rows.sort(key=lambda row: (-row["won_amount"], row["label"]))
    columns = [
        Column("key", "Key"),
        Column("label", dict(REVENUE_GROUPS)[group_by].capitalize()),
        Column("won_count", "Deals won", INTEGER),
        Column("won_amount", "Won revenue", MONEY),
        Column("average", "Average deal", MONEY),
        Column("share", "Share %", PERCENT),
    ]
    return ReportResult(
        columns,
        rows,
        summary=[
            {
                "key": "won_count",
                "label": "Deals won",
                "value": sum(r["won_count"] for r in rows),
                "kind": INTEGER,
            },
            {"key": "won_amount", "label": "Won revenue", "value": _money(total), "kind": MONEY},
        ],
        notes=[
            "Deals won with a close date in the period. New customer: the account's first won deal (among "
            "the deals you see); existing: an account with an earlier won deal. Source: the source of the "
            "lead the deal was converted from. Campaign: the campaign recorded on the deal (the one that "
            f"sourced it), whoever may see it. {conversion_note()}"
        ],
        chart={"rows": rows, "label": "label", "value": "won_amount", "kind": MONEY},
    )


def _key(group_by: str, value) -> str | None:
    if value is None or value == "":
        return None
    if group_by == "month":
        return _cohort_label(value, "month")
    if group_by == "quarter":
        return _cohort_label(value, "quarter")
    return str(value)


def _labels(group_by: str, values: list) -> dict[Any, str]:
    """Readable labels for the groups' values (one query for owners)."""
    if group_by in ("month", "quarter"):
        return {value: _key(group_by, value) for value in values if value is not None}
    if group_by == "owner":
        names = _usernames(values)
        return {**names, None: "No owner"}
    if group_by == "campaign":
        ids = [pk for pk in values if pk is not None]
        names = dict(Campaign.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
        return {**names, None: "No campaign"}
    choices = {
        "source": dict(LeadSource.choices) | {None: "No source", "": "No source"},
        "industry": dict(Industry.choices) | {None: "No industry", "": "No industry"},
        "type": dict(OpportunityType.choices),
        "customer": {"new": "New customer", "existing": "Existing customer", "no account": "No account"},
    }
    return choices.get(group_by, {})


# --- win/loss -------------------------------------------------------------------------------------

WIN_LOSS_GROUPS = (
    ("reason", "lost reason"),
    ("stage", "stage lost at"),
    ("owner", "owner"),
    ("size", "size band"),
)


def _size_band() -> Case:
    whens = []
    for index, (upper, _label) in enumerate(SIZE_BANDS):
        if upper is not None:
            whens.append(When(value__lt=upper, then=Value(index)))
    return Case(*whens, default=Value(len(SIZE_BANDS) - 1), output_field=IntegerField())


def _lost_at_stage_groups(lost: QuerySet) -> list[dict]:
    """The ``lost`` deals by the stage each moved from into its (latest) lost stage, "" without stage
    history: the latest such change of every deal numbered in one window and joined, not looked up
    deal by deal."""
    changes = OpportunityStageChange.objects.filter(to_stage__is_lost=True).values(
        "from_stage_name",
        of_deal=F("record_id"),
        nth=Window(
            RowNumber(), partition_by=[F("record_id")], order_by=[F("changed_at").desc(), F("pk").desc()]
        ),
    )
    rows = rows_over(
        "SELECT COALESCE(c.from_stage_name, ''), COUNT(*), SUM(d.value) FROM {deals} d "
        "LEFT JOIN {changes} c ON c.of_deal = d.deal AND c.nth = 1 GROUP BY 1",
        deals=lost.values(deal=F("pk"), value=converted()),
        changes=changes,
    )
    return [
        {
            "group": group,
            "won": 0,
            "lost": count,
            "won_amount": None,
            "lost_amount": None if amount is None else Decimal(str(amount)),
        }
        for group, count, amount in rows
    ]


def win_loss_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Deals closed in the period (close date), won against lost, by lost reason, the stage a deal was
    lost at, owner or size band."""
    group_by = filters.group_by or "reason"
    deals = report_deals(user, filters).filter(
        filters.period_q("close_date"), status__in=(OpportunityStatus.WON, OpportunityStatus.LOST)
    )
    is_won, is_lost = Q(status=OpportunityStatus.WON), Q(status=OpportunityStatus.LOST)
    if group_by in ("reason", "stage"):
        deals = deals.filter(is_lost)
    if group_by == "reason":
        group = F("lost_reason_id")
    elif group_by == "owner":
        group = F("owner_id")
    else:
        deals = deals.alias(value=converted())
        group = _size_band()
    if group_by == "stage":
        grouped = _lost_at_stage_groups(deals)
    else:
        grouped = list(
            deals.annotate(group=group)
            .values("group")
            .annotate(
                won=count_rows(filter=is_won),
                lost=count_rows(filter=is_lost),
                won_amount=Sum(converted(), filter=is_won),
                lost_amount=Sum(converted(), filter=is_lost),
            )
        )
    if group_by == "reason":
        names = dict(
            LostReason.objects.filter(pk__in=[r["group"] for r in grouped if r["group"]]).values_list(
                "pk", "name"
            )
        )
        labels = {**names, None: "No reason given"}
    elif group_by == "owner":
        labels = {**_usernames([r["group"] for r in grouped]), None: "No owner"}
    elif group_by == "size":
        labels = {index: label for index, (_upper, label) in enumerate(SIZE_BANDS)}
    else:
        labels = {"": "Unknown (no stage history)"}
    all_lost = sum(row["lost"] for row in grouped)
    rows = [
        {
            "label": labels.get(row["group"], row["group"] if row["group"] is not None else "—"),
            "won": row["won"],
            "lost": row["lost"],
            "win_rate": percent(row["won"], row["won"] + row["lost"]),
            "won_amount": _money(row["won_amount"]),
            "lost_amount": _money(row["lost_amount"]),
            "share_of_losses": percent(row["lost"], all_lost),
            "_order": row["group"] if group_by == "size" else None,
        }
        for row in grouped
    ]
    if group_by == "size":
        rows.sort(key=lambda row: row["_order"])
    else:
        rows.sort(key=lambda row: (-row["lost"], -row["won"], str(row["label"])))
    for row in rows:
        row.pop("_order")
    columns = [Column("label", dict(WIN_LOSS_GROUPS)[group_by].capitalize())]
    if group_by in ("owner", "size"):
        columns += [Column("won", "Won", INTEGER)]
    columns += [Column("lost", "Lost", INTEGER)]
    if group_by in ("owner", "size"):
        columns += [Column("win_rate", "Win rate %", PERCENT), Column("won_amount", "Won value", MONEY)]
    columns += [
        Column("lost_amount", "Lost value", MONEY),
        Column("share_of_losses", "Share of losses %", PERCENT),
    ]
    won_total = sum(row["won"] for row in rows)
    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "won", "label": "Won", "value": won_total, "kind": INTEGER},
            {"key": "lost", "label": "Lost", "value": all_lost, "kind": INTEGER},
            {
                "key": "win_rate",
                "label": "Win rate %",
                "value": percent(won_total, won_total + all_lost),
                "kind": PERCENT,
            },
        ],
        notes=[
            "Deals won or lost with a close date in the period; win rate = won / (won + lost). "
            "Stage lost at: the stage a deal moved from into its lost stage (stage history). "
            f"By reason and by stage count lost deals only. Size bands on the converted amount. "
            f"{conversion_note()}"
        ],
        chart={"rows": rows, "label": "label", "value": "lost", "kind": INTEGER},
    )


# --- customer lifetime value ----------------------------------------------------------------------


def lifetime_value_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Per account: won revenue to date, years active, yearly average and a projection."""
    years_ahead = settings.CRM_LIFETIME_VALUE_YEARS
    as_of = filters.date_to or timezone.localdate()
    won = report_deals(user, filters).filter(
        filters.period_q("close_date"), status=OpportunityStatus.WON, account__isnull=False
    )
    grouped = list(
        won.values("account_id")
        .annotate(
            deals=count_rows(),
            amount=Coalesce(Sum(converted()), Value(Decimal(0)), output_field=CONVERTED),
            first=Min("close_date"),
            last=Max("close_date"),
        )
        .order_by("-amount", "account_id")[: filters.limit]
    )
    totals = won.aggregate(accounts=Count("account_id", distinct=True), amount=Sum(converted()))
    accounts = {
        a["pk"]: a
        for a in Account.objects.filter(pk__in=[r["account_id"] for r in grouped]).values(
            "pk", "name", "industry"
        )
    }
    industries = dict(Industry.choices)
    rows = []
    for row in grouped:
        account = accounts.get(row["account_id"], {})
        first = row["first"] or as_of
        years = max(Decimal(1), Decimal((as_of - first).days) / Decimal("365.25"))
        yearly = row["amount"] / years
        rows.append(
            {
                "account_id": row["account_id"],
                "account": account.get("name", ""),
                "industry": industries.get(account.get("industry"), ""),
                "won_deals": row["deals"],
                "won_to_date": _money(row["amount"]),
                "first_won": row["first"],
                "last_won": row["last"],
                "years_active": float(years.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)),
                "yearly_average": _money(yearly),
                "projected": _money(row["amount"] + yearly * years_ahead),
            }
        )
    columns = [
        Column("account_id", "Account id", INTEGER),
        Column("account", "Account"),
        Column("industry", "Industry"),
        Column("won_deals", "Deals won", INTEGER),
        Column("won_to_date", "Won revenue to date", MONEY),
        Column("first_won", "First win", DATE),
        Column("last_won", "Last win", DATE),
        Column("years_active", "Years active", NUMBER),
        Column("yearly_average", "Yearly average", MONEY),
        Column("projected", f"Projected lifetime value ({years_ahead} more years)", MONEY),
    ]
    count = totals["accounts"] or 0
    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "accounts", "label": "Accounts with a won deal", "value": count, "kind": INTEGER},
            {"key": "won_amount", "label": "Won revenue", "value": _money(totals["amount"]), "kind": MONEY},
            {
                "key": "average",
                "label": "Average per account",
                "value": _money((totals["amount"] or 0) / count) if count else None,
                "kind": MONEY,
            },
        ],
        notes=[
            f"Won revenue to date: the account's deals won with a close date up to {as_of:%Y-%m-%d} (and "
            "from the period's start when one is given). Years active: from its first win to that day, at "
            "least one year. Yearly average = won revenue ÷ years active. Projection method: the account "
            f"keeps buying at its yearly average for {years_ahead} more years (CRM_LIFETIME_VALUE_YEARS), "
            "no growth and no churn discount: projected lifetime value = won to date + yearly average × "
            f"{years_ahead}. The table lists the largest accounts first (the Rows filter). "
            f"{conversion_note()}"
        ],
        chart={"rows": rows[:20], "label": "account", "value": "won_to_date", "kind": MONEY},
    )


# --- lead source effectiveness --------------------------------------------------------------------


def lead_source_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Per lead source: leads created in the period, how many converted, and the revenue of the deals
    won from them."""
    leads = _leads(user, filters).filter(filters.period_q("created_at", instant=True))
    won_deal = Q(converted_opportunity__status=OpportunityStatus.WON)
    if not user_sees_everything(user) and not user.is_superuser:
        won_deal &= Q(converted_opportunity__in=opportunity_visible_to(user).values("pk"))
    amount = converted(
        "converted_opportunity__amount",
        currency_field="converted_opportunity__currency",
        date_field="converted_opportunity__close_date",
    )
    grouped = list(
        leads.values("source").annotate(
            leads=count_rows(),
            converted=count_rows(filter=Q(status=LeadStatus.CONVERTED)),
            won=count_rows(filter=won_deal),
            won_amount=Sum(amount, filter=won_deal),
        )
    )
    names = dict(LeadSource.choices)
    rows = [
        {
            "source": row["source"] or None,
            "label": names.get(row["source"], "No source"),
            "leads": row["leads"],
            "converted": row["converted"],
            "conversion": percent(row["converted"], row["leads"]),
            "won_deals": row["won"],
            "won_amount": _money(row["won_amount"]),
            "revenue_per_lead": _money((row["won_amount"] or 0) / row["leads"]) if row["leads"] else None,
        }
        for row in grouped
    ]
    rows.sort(key=lambda row: (-row["won_amount"], -row["leads"], row["label"]))
    all_leads = sum(row["leads"] for row in rows)
    all_converted = sum(row["converted"] for row in rows)
    columns = [
        Column("source", "Source key"),
        Column("label", "Source"),
        Column("leads", "Leads", INTEGER),
        Column("converted", "Converted", INTEGER),
        Column("conversion", "Conversion %", PERCENT),
        Column("won_deals", "Deals won", INTEGER),
        Column("won_amount", "Won revenue", MONEY),
        Column("revenue_per_lead", "Won revenue per lead", MONEY),
    ]
    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "leads", "label": "Leads", "value": all_leads, "kind": INTEGER},
            {
                "key": "conversion",
                "label": "Conversion %",
                "value": percent(all_converted, all_leads),
                "kind": PERCENT,
            },
            {
                "key": "won_amount",
                "label": "Won revenue",
                "value": _money(sum(r["won_amount"] for r in rows)),
                "kind": MONEY,
            },
        ],
        notes=[
            "Leads created in the period (the pipeline, owner and source filters apply to the leads); "
            "conversion % = converted / leads; won revenue: the deals converted from these leads that are "
            f"won (whatever their close date), among the deals you see. {conversion_note()}"
        ],
        chart={"rows": rows, "label": "label", "value": "won_amount", "kind": MONEY},
    )


def register_reports() -> None:
    register_report_source(
        ReportSource(
            key="opportunities",
            label="Opportunities",
            permission="sales.view_opportunity",
            visible_to=opportunity_visible_to,
            filterset=OpportunityFilter,
            fields=(
                BuilderField("status", "Status", CHOICE, choices=tuple(OpportunityStatus.choices)),
                BuilderField("opportunity_type", "Type", CHOICE, choices=tuple(OpportunityType.choices)),
                BuilderField("priority", "Priority", CHOICE, choices=tuple(Priority.choices)),
                BuilderField(
                    "pipeline", "Pipeline", FOREIGN_KEY, path="pipeline_id", label_path="pipeline__name"
                ),
                BuilderField("stage", "Stage", FOREIGN_KEY, path="stage_id", label_path="stage__name"),
                BuilderField("owner", "Owner", FOREIGN_KEY, path="owner_id", label_path="owner__username"),
                BuilderField(
                    "account", "Account", FOREIGN_KEY, path="account_id", label_path="account__name"
                ),
                BuilderField(
                    "account__industry", "Account industry", CHOICE, choices=tuple(Industry.choices)
                ),
                BuilderField(
                    "account__account_type", "Account type", CHOICE, choices=tuple(AccountType.choices)
                ),
                BuilderField("lead__source", "Lead source", CHOICE, choices=tuple(LeadSource.choices)),
                BuilderField(
                    "lost_reason",
                    "Lost reason",
                    FOREIGN_KEY,
                    path="lost_reason_id",
                    label_path="lost_reason__name",
                ),
                BuilderField("currency", "Currency"),
                BuilderField("close_date", "Close date", DATE_KIND),
                BuilderField("created_at", "Created", DATETIME),
                BuilderField("closed_at", "Closed", DATETIME),
                # In the company currency at the rate in force on the close date, as every report adds it.
                BuilderField("amount", f"Amount ({company_currency()})", MONEY, expression=converted),
                BuilderField("probability", "Probability", INTEGER),
            ),
        )
    )
    for definition in (
        ReportDefinition(
            "funnel",
            "Conversion funnel",
            "How many deals (or leads) of each cohort reached each stage; stage-to-stage conversion and "
            "drop-off.",
            funnel_report,
            LEADS_AND_DEALS,
            uses=("date_from", "date_to", "pipeline", "owner", "team", "source", "cohort", "kind"),
        ),
        ReportDefinition(
            "velocity",
            "Pipeline velocity",
            "Open deals × win rate × average won deal ÷ cycle length, per month and now.",
            velocity_report,
            DEALS,
        ),
        ReportDefinition(
            "cycle",
            "Sales cycle and time in stage",
            "Days from creation to win, and the time deals spend in each stage (stage history).",
            cycle_report,
            DEALS,
        ),
        ReportDefinition(
            "revenue",
            "Revenue",
            "Won revenue by month, quarter, lead source, owner, industry, new vs existing customer, "
            "deal type or campaign.",
            revenue_report,
            DEALS,
            group_by=REVENUE_GROUPS,
        ),
        ReportDefinition(
            "win-loss",
            "Win/loss analysis",
            "Deals won and lost by lost reason, the stage lost at, owner or size band.",
            win_loss_report,
            DEALS,
            group_by=WIN_LOSS_GROUPS,
        ),
        ReportDefinition(
            "lifetime-value",
            "Customer lifetime value",
            "Per account: won revenue to date, yearly average, years active and a stated projection.",
            lifetime_value_report,
            DEALS,
            uses=("date_from", "date_to", "pipeline", "owner", "team", "source", "limit"),
        ),
        ReportDefinition(
            "lead-sources",
            "Lead source effectiveness",
            "Per source: leads, conversion % and won revenue.",
            lead_source_report,
            LEADS_AND_DEALS,
        ),
    ):
        register_report(definition)
