"""The activity report (activities own these figures): activities by type, owner or outcome, and the
activities logged per won deal. Registered with crm's report registry."""

from django.contrib.auth import get_user_model
from django.db.models import Q
from django.utils import timezone

from activities.filters import ActivityFilter
from activities.models import CLOSED_ACTIVITY_STATUSES, ActivityStatus, ActivityType
from activities.selectors import activity_visible_to
from activities.service.reports import register_service_reports
from crm.actors import Actor
from crm.db.aggregates import count_rows
from crm.models import Priority
from crm.reports import (
    INTEGER,
    MONEY,
    NUMBER,
    PERCENT,
    Column,
    ReportDefinition,
    ReportFilters,
    ReportResult,
    register_report,
)
from crm.reports.builder import (
    CHOICE,
    DATETIME,
    FOREIGN_KEY,
    BuilderField,
    ReportSource,
    register_report_source,
)
from sales.currencies import converted
from sales.models import OpportunityStatus
from sales.reports import percent, report_deals

ACTIVITY_GROUPS = (("type", "type"), ("owner", "owner"), ("outcome", "outcome (status)"))


def activity_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Activities created (logged) in the period, grouped; the pipeline and source filters keep the
    activities of leads and deals of that pipeline or source."""
    group_by = filters.group_by or "type"
    activities = activity_visible_to(user).filter(
        filters.owner_q(), filters.period_q("created_at", instant=True)
    )
    if filters.pipeline is not None:
        activities = activities.filter(
            Q(lead__pipeline=filters.pipeline) | Q(opportunity__pipeline=filters.pipeline)
        )
    if filters.source:
        activities = activities.filter(
            Q(lead__source=filters.source) | Q(opportunity__lead__source=filters.source)
        )
    field = {"type": "activity_type", "owner": "owner_id", "outcome": "status"}[group_by]
    now = timezone.now()
    grouped = list(
        activities.order_by()
        .values(field)
        .annotate(
            count=count_rows(),
            completed=count_rows(filter=Q(status=ActivityStatus.COMPLETED)),
            cancelled=count_rows(filter=Q(status=ActivityStatus.CANCELLED)),
            overdue=count_rows(filter=Q(due_date__lt=now) & ~Q(status__in=CLOSED_ACTIVITY_STATUSES)),
        )
    )
    if group_by == "owner":
        ids = [row[field] for row in grouped if row[field] is not None]
        labels = (
            dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}
        )
        labels[None] = "No owner"
    else:
        labels = dict(ActivityType.choices if group_by == "type" else ActivityStatus.choices)
    total = sum(row["count"] for row in grouped)
    rows = [
        {
            "key": str(row[field]) if row[field] is not None else None,
            "label": labels.get(row[field], str(row[field])),
            "count": row["count"],
            "completed": row["completed"],
            "cancelled": row["cancelled"],
            "overdue": row["overdue"],
            "share": percent(row["count"], total),
        }
        for row in grouped
    ]
    rows.sort(key=lambda row: (-row["count"], row["label"]))
    # Activities per won deal: the deals won in the period (close date) and the activities logged on them.
    won = report_deals(user, filters).filter(filters.period_q("close_date"), status=OpportunityStatus.WON)
    won_count = won.count()
    on_won = activity_visible_to(user).filter(opportunity__in=won.values("pk")).count() if won_count else 0
    columns = [
        Column("key", "Key"),
        Column("label", dict(ACTIVITY_GROUPS)[group_by].capitalize()),
        Column("count", "Activities", INTEGER),
        Column("completed", "Completed", INTEGER),
        Column("cancelled", "Cancelled", INTEGER),
        Column("overdue", "Overdue", INTEGER),
        Column("share", "Share %", PERCENT),
    ]
    return ReportResult(
        columns,
        rows,
        summary=[
            {"key": "activities", "label": "Activities", "value": total, "kind": INTEGER},
            {"key": "won_deals", "label": "Deals won", "value": won_count, "kind": INTEGER},
            {
                "key": "activities_per_won_deal",
                "label": "Activities per won deal",
                "value": round(on_won / won_count, 2) if won_count else None,
                "kind": NUMBER,
            },
        ],
        notes=[
            "Activities created (logged) in the period. Outcome: the activity's status; overdue: not "
            "completed or cancelled and due before now. Activities per won deal: the activities on the deals "
            "won in the period (close date), whenever they were logged, ÷ those deals."
        ],
        chart={"rows": rows, "label": "label", "value": "count", "kind": INTEGER},
    )


def _deal_amount():
    return converted(
        "opportunity__amount", currency_field="opportunity__currency", date_field="opportunity__close_date"
    )


def register_reports() -> None:
    register_report_source(
        ReportSource(
            key="activities",
            label="Activities",
            permission="activities.view_activity",
            visible_to=activity_visible_to,
            filterset=ActivityFilter,
            fields=(
                BuilderField("activity_type", "Type", CHOICE, choices=tuple(ActivityType.choices)),
                BuilderField("status", "Status", CHOICE, choices=tuple(ActivityStatus.choices)),
                BuilderField("priority", "Priority", CHOICE, choices=tuple(Priority.choices)),
                BuilderField("owner", "Owner", FOREIGN_KEY, path="owner_id", label_path="owner__username"),
                BuilderField(
                    "account", "Account", FOREIGN_KEY, path="account_id", label_path="account__name"
                ),
                BuilderField("created_at", "Created", DATETIME),
                BuilderField("due_date", "Due", DATETIME),
                BuilderField("completed_at", "Completed", DATETIME),
                BuilderField("duration_minutes", "Duration (minutes)", INTEGER),
                # A figure of another app's record: only for readers who may read deals.
                BuilderField(
                    "opportunity__stage",
                    "Deal stage",
                    FOREIGN_KEY,
                    path="opportunity__stage_id",
                    label_path="opportunity__stage__name",
                    permission="sales.view_opportunity",
                ),
                BuilderField(
                    "opportunity__amount",
                    "Deal amount (converted)",
                    MONEY,
                    expression=_deal_amount,
                    permission="sales.view_opportunity",
                ),
            ),
        )
    )
    register_report(
        ReportDefinition(
            "activity",
            "Activity",
            "Activities by type, owner or outcome, and activities per won deal.",
            activity_report,
            ("activities.view_activity", "sales.view_opportunity"),
            group_by=ACTIVITY_GROUPS,
        )
    )
    register_service_reports()
