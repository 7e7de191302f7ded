"""Customer-service reports (activities own these figures), registered with crm's report registry so
they are listed at /admin/reports/ (with their server-drawn chart and CSV/XLSX export) and served at
/api/v1/crm/reports/<key>/: satisfaction (CSAT) by agent or team, SLA attainment, the backlog by age
and the median first-response and resolution times. Every figure counts only the tickets the reader
sees; the owner and team filters choose the assignee (the agent at resolution, for surveys)."""

import datetime
import statistics

from django.contrib.auth import get_user_model
from django.db.models import Q, QuerySet, Sum
from django.utils import timezone

from activities.service.models import OPEN_STATUSES, Ticket
from activities.service.satisfaction import survey_visible_to
from activities.service.selectors import ticket_visible_to
from crm.actors import Actor
from crm.db.aggregates import count_rows
from crm.models import Priority, SalesTeam
from crm.reports import (
    INTEGER,
    NUMBER,
    PERCENT,
    Column,
    ReportDefinition,
    ReportFilters,
    ReportResult,
    register_report,
)
from sales.reports import percent

PEOPLE_GROUPS = (("agent", "agent"), ("team", "team"))
TICKET_GROUPS = (("priority", "priority"), *PEOPLE_GROUPS)
PERIOD_AND_PEOPLE = ("date_from", "date_to", "owner", "team")
# Open tickets by how long ago they came in: (key, label, from days, to days).
AGE_BUCKETS = (
    ("0-1d", "Under a day", 0, 1),
    ("1-3d", "1 to 3 days", 1, 3),
    ("3-7d", "3 to 7 days", 3, 7),
    ("7-30d", "7 to 30 days", 7, 30),
    ("30d+", "30 days or more", 30, None),
)
SATISFIED = 4  # a rating of 4 or 5 counts as satisfied (CSAT)


def _labels(group_by: str, keys) -> dict:
    ids = [key for key in keys if key is not None]
    if group_by == "priority":
        labels = dict(Priority.choices)
    elif group_by == "agent":
        labels = (
            dict(get_user_model().objects.filter(pk__in=ids).values_list("pk", "username")) if ids else {}
        )
    else:
        labels = dict(SalesTeam.objects.filter(pk__in=ids).values_list("pk", "name")) if ids else {}
    labels[None] = {"agent": "Unassigned", "team": "No team", "priority": "—"}[group_by]
    return labels


def _field(group_by: str) -> str:
    return {"agent": "assignee_id", "team": "team_id", "priority": "priority"}[group_by]


def _tickets(user: Actor, filters: ReportFilters) -> QuerySet[Ticket]:
    return ticket_visible_to(user).filter(filters.owner_q("assignee"))


def csat_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Ratings answered in the period, by the agent (or team) that had the ticket when it was resolved."""
    group_by = filters.group_by or "agent"
    field = {"agent": "agent_id", "team": "team_id"}[group_by]
    surveys = survey_visible_to(user).filter(filters.owner_q("agent"))
    answered = surveys.filter(filters.period_q("answered_at", instant=True), answered_at__isnull=False)
    grouped = list(
        answered.order_by()
        .values(field)
        .annotate(
            responses=count_rows(),
            satisfied=count_rows(filter=Q(rating__gte=SATISFIED)),
            total=Sum("rating"),
        )
    )
    labels = _labels(group_by, [row[field] for row in grouped])
    rows = [
        {
            "key": str(row[field]) if row[field] is not None else None,
            "label": labels.get(row[field], str(row[field])),
            "responses": row["responses"],
            "satisfied": row["satisfied"],
            "average": round(row["total"] / row["responses"], 2),
            "csat": percent(row["satisfied"], row["responses"]),
        }
        for row in grouped
    ]
    rows.sort(key=lambda row: (-(row["csat"] or 0), -row["responses"], row["label"]))
    responses = sum(row["responses"] for row in grouped)
    satisfied = sum(row["satisfied"] for row in grouped)
    sent = surveys.filter(filters.period_q("sent_at", instant=True)).count()
    return ReportResult(
        [
            Column("key", "Key"),
            Column("label", group_by.capitalize()),
            Column("responses", "Ratings", INTEGER),
            Column("satisfied", "Satisfied (4–5)", INTEGER),
            Column("average", "Average rating", NUMBER),
            Column("csat", "CSAT %", PERCENT),
        ],
        rows,
        summary=[
            {"key": "responses", "label": "Ratings", "value": responses, "kind": INTEGER},
            {"key": "csat", "label": "CSAT %", "value": percent(satisfied, responses), "kind": PERCENT},
            {
                "key": "average",
                "label": "Average rating",
                "value": round(sum(row["total"] for row in grouped) / responses, 2) if responses else None,
                "kind": NUMBER,
            },
            {"key": "sent", "label": "Surveys sent", "value": sent, "kind": INTEGER},
        ],
        notes=[
            "Ratings (1–5) given in the period. CSAT % = ratings of 4 or 5 ÷ ratings. The agent and team "
            "are those the ticket had when it was resolved. Surveys sent: the links sent in the period."
        ],
        chart={"rows": rows, "label": "label", "value": "csat", "kind": PERCENT},
    )


def _past_due(prefix: str, done: str, now: datetime.datetime) -> Q:
    """A target still open whose deadline passed while the clock ran: missed, whatever comes next."""
    return Q(**{f"{done}__isnull": True, f"{prefix}_due__lt": now, "sla_paused_at__isnull": True})


def sla_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Of the tickets created in the period under an SLA policy, the share of targets met."""
    group_by = filters.group_by or "priority"
    field = _field(group_by)
    now = timezone.now()
    tickets = _tickets(user, filters).filter(
        filters.period_q("created_at", instant=True), sla_policy__isnull=False
    )
    fr_missed = Q(first_response_met=False) | _past_due("first_response", "first_response_at", now)
    res_missed = Q(resolution_met=False) | _past_due("resolution", "resolved_at", now)
    grouped = list(
        tickets.order_by()
        .values(field)
        .annotate(
            tickets=count_rows(),
            fr_met=count_rows(filter=Q(first_response_met=True)),
            fr_missed=count_rows(filter=fr_missed),
            res_met=count_rows(filter=Q(resolution_met=True)),
            res_missed=count_rows(filter=res_missed),
        )
    )
    labels = _labels(group_by, [row[field] for row in grouped])
    rows = []
    for row in grouped:
        met = row["fr_met"] + row["res_met"]
        decided = met + row["fr_missed"] + row["res_missed"]
        rows.append(
            {
                "key": str(row[field]) if row[field] is not None else None,
                "label": labels.get(row[field], str(row[field])),
                "tickets": row["tickets"],
                "first_response_met": row["fr_met"],
                "first_response_missed": row["fr_missed"],
                "first_response_attainment": percent(row["fr_met"], row["fr_met"] + row["fr_missed"]),
                "resolution_met": row["res_met"],
                "resolution_missed": row["res_missed"],
                "resolution_attainment": percent(row["res_met"], row["res_met"] + row["res_missed"]),
                "attainment": percent(met, decided),
            }
        )
    rows.sort(key=lambda row: (row["attainment"] is None, row["attainment"] or 0, row["label"]))

    def total(name):
        return sum(row[name] for row in rows)

    met_all = total("first_response_met") + total("resolution_met")
    decided_all = met_all + total("first_response_missed") + total("resolution_missed")
    return ReportResult(
        [
            Column("key", "Key"),
            Column("label", group_by.capitalize()),
            Column("tickets", "Tickets", INTEGER),
            Column("first_response_met", "First response met", INTEGER),
            Column("first_response_missed", "First response missed", INTEGER),
            Column("first_response_attainment", "First response %", PERCENT),
            Column("resolution_met", "Resolution met", INTEGER),
            Column("resolution_missed", "Resolution missed", INTEGER),
            Column("resolution_attainment", "Resolution %", PERCENT),
            Column("attainment", "SLA attainment %", PERCENT),
        ],
        rows,
        summary=[
            {"key": "tickets", "label": "Tickets under an SLA", "value": total("tickets"), "kind": INTEGER},
            {
                "key": "first_response_attainment",
                "label": "First response %",
                "value": percent(
                    total("first_response_met"), total("first_response_met") + total("first_response_missed")
                ),
                "kind": PERCENT,
            },
            {
                "key": "resolution_attainment",
                "label": "Resolution %",
                "value": percent(
                    total("resolution_met"), total("resolution_met") + total("resolution_missed")
                ),
                "kind": PERCENT,
            },
            {
                "key": "attainment",
                "label": "SLA attainment %",
                "value": percent(met_all, decided_all),
                "kind": PERCENT,
            },
        ],
        notes=[
            "Tickets created in the period with an SLA policy. A target counts once decided: met or missed "
            "when the first reply was given or the ticket resolved, and missed already when its deadline "
            "passed on an open ticket whose clock runs. Attainment % = targets met ÷ targets decided; a "
            "target still running counts in neither."
        ],
        chart={"rows": rows, "label": "label", "value": "attainment", "kind": PERCENT},
    )


def backlog_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """The open tickets now, by how long ago they came in, and by priority."""
    now = timezone.now()
    tickets = _tickets(user, filters).filter(status__in=OPEN_STATUSES)
    counts = {}
    for key, _label, start, end in AGE_BUCKETS:
        age = Q(created_at__lte=now - datetime.timedelta(days=start))
        if end is not None:
            age &= Q(created_at__gt=now - datetime.timedelta(days=end))
        counts[key] = count_rows(filter=age)
        for priority in Priority.values:
            counts[f"{key}:{priority}"] = count_rows(filter=age & Q(priority=priority))
    counts["unassigned"] = count_rows(filter=Q(assignee__isnull=True))
    figures = tickets.aggregate(**counts)
    total = sum(figures[key] for key, *_ in AGE_BUCKETS)
    rows = [
        {
            "key": key,
            "label": label,
            "count": figures[key],
            **{priority: figures[f"{key}:{priority}"] for priority in Priority.values},
            "share": percent(figures[key], total),
        }
        for key, label, *_ in AGE_BUCKETS
    ]
    return ReportResult(
        [
            Column("key", "Key"),
            Column("label", "Age"),
            Column("count", "Open tickets", INTEGER),
            *(Column(value, label, INTEGER) for value, label in Priority.choices),
            Column("share", "Share %", PERCENT),
        ],
        rows,
        summary=[
            {"key": "open", "label": "Open tickets", "value": total, "kind": INTEGER},
            {"key": "unassigned", "label": "Unassigned", "value": figures["unassigned"], "kind": INTEGER},
            {
                "key": "older_than_week",
                "label": "Older than a week",
                "value": figures["7-30d"] + figures["30d+"],
                "kind": INTEGER,
            },
        ],
        notes=[
            "Tickets not resolved or closed, now, by the time since they came in (created). The period "
            "filters do not apply: a backlog is counted at one moment."
        ],
        chart={"rows": rows, "label": "label", "value": "count", "kind": INTEGER},
    )


def _hours(seconds: list[float]) -> float | None:
    return round(statistics.median(seconds) / 3600, 2) if seconds else None


def times_report(*, user: Actor, filters: ReportFilters) -> ReportResult:
    """Median time to first response and to resolution of the tickets created in the period."""
    group_by = filters.group_by or "priority"
    field = _field(group_by)
    tickets = _tickets(user, filters).filter(filters.period_q("created_at", instant=True))
    first, resolution, counts = {}, {}, {}
    every_first, every_resolution = [], []
    values = tickets.order_by().values_list(field, "created_at", "first_response_at", "resolved_at")
    for key, created, responded, resolved in values.iterator(chunk_size=5000):
        counts[key] = counts.get(key, 0) + 1
        if responded is not None:
            seconds = max((responded - created).total_seconds(), 0)
            first.setdefault(key, []).append(seconds)
            every_first.append(seconds)
        if resolved is not None:
            seconds = max((resolved - created).total_seconds(), 0)
            resolution.setdefault(key, []).append(seconds)
            every_resolution.append(seconds)
    labels = _labels(group_by, counts)
    rows = [
        {
            "key": str(key) if key is not None else None,
            "label": labels.get(key, str(key)),
            "tickets": count,
            "responded": len(first.get(key, [])),
            "median_first_response_hours": _hours(first.get(key, [])),
            "resolved": len(resolution.get(key, [])),
            "median_resolution_hours": _hours(resolution.get(key, [])),
        }
        for key, count in counts.items()
    ]
    rows.sort(key=lambda row: (-row["tickets"], row["label"]))
    return ReportResult(
        [
            Column("key", "Key"),
            Column("label", group_by.capitalize()),
            Column("tickets", "Tickets", INTEGER),
            Column("responded", "Answered", INTEGER),
            Column("median_first_response_hours", "Median first response (h)", NUMBER),
            Column("resolved", "Resolved", INTEGER),
            Column("median_resolution_hours", "Median resolution (h)", NUMBER),
        ],
        rows,
        summary=[
            {"key": "tickets", "label": "Tickets", "value": sum(counts.values()), "kind": INTEGER},
            {
                "key": "median_first_response_hours",
                "label": "Median first response (h)",
                "value": _hours(every_first),
                "kind": NUMBER,
            },
            {
                "key": "median_resolution_hours",
                "label": "Median resolution (h)",
                "value": _hours(every_resolution),
                "kind": NUMBER,
            },
        ],
        notes=[
            "Tickets created in the period. First response: from the ticket's arrival to the first public "
            "reply of an agent; resolution: to when it was (last) resolved. Hours on the clock, not business "
            "hours (the SLA report measures against the business-hours targets)."
        ],
        chart={"rows": rows, "label": "label", "value": "median_resolution_hours", "kind": NUMBER},
    )


def register_service_reports() -> None:
    tickets = ("activities.view_ticket",)
    register_report(
        ReportDefinition(
            "service-csat",
            "Customer satisfaction (CSAT)",
            "Ratings of resolved tickets by agent or team: CSAT % and average rating.",
            csat_report,
            (*tickets, "activities.view_satisfactionsurvey"),
            group_by=PEOPLE_GROUPS,
            uses=PERIOD_AND_PEOPLE,
        )
    )
    register_report(
        ReportDefinition(
            "service-sla",
            "SLA attainment",
            "First-response and resolution targets met, by priority, agent or team.",
            sla_report,
            tickets,
            group_by=TICKET_GROUPS,
            uses=PERIOD_AND_PEOPLE,
        )
    )
    register_report(
        ReportDefinition(
            "service-backlog",
            "Ticket backlog by age",
            "Open tickets now, by age and priority.",
            backlog_report,
            tickets,
            uses=("owner", "team"),
        )
    )
    register_report(
        ReportDefinition(
            "service-times",
            "Response and resolution times",
            "Median time to first response and to resolution, by priority, agent or team.",
            times_report,
            tickets,
            group_by=TICKET_GROUPS,
            uses=PERIOD_AND_PEOPLE,
        )
    )
