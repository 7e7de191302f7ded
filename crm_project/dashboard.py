"""The CRM dashboard shown as the admin index: the same figures as GET /api/v1/crm/dashboard/."""

from itertools import groupby

from django.urls import reverse

from activities.selectors import activity_agenda, activity_owns_any
from crm.models import Pipeline, Stage
from crm.next_actions import next_actions_mine
from crm.reports import report_definitions
from sales.selectors import conversion_funnel, dashboard, opportunity_recent_won

# How many of the user's records "My next actions" lists.
MY_NEXT_ACTIONS = 8


def _pipeline_from(request) -> Pipeline | None:
    value = request.GET.get("pipeline", "")
    if not value.isdigit():
        return None
    return Pipeline.objects.filter(pk=value).first()


def _shortcuts(request) -> list[dict[str, str]]:
    """Links to the back office's working pages the user may open."""
    user = request.user
    links = [
        ("crm.view_lead", "Leads board", "admin:crm_lead_board"),
        ("sales.view_opportunity", "Deals board", "admin:sales_opportunity_board"),
        ("sales.view_opportunity", "Forecast", "admin:sales_opportunity_forecast"),
        ("activities.view_activity", "Calendar", "admin:activities_activity_calendar"),
    ]
    shortcuts = [{"label": label, "url": reverse(name)} for perm, label, name in links if user.has_perm(perm)]
    if report_definitions(user):
        shortcuts.append({"label": "Reports", "url": reverse("admin:reports")})
    return shortcuts


def dashboard_context(request) -> dict:
    user = request.user
    pipeline = _pipeline_from(request)
    funnel = conversion_funnel(user=user, pipeline=pipeline)
    # The funnel has counted every lead and the converted ones: the figures reuse its counts.
    steps = {step["key"]: step["count"] for step in funnel}
    figures = dashboard(user=user, pipeline=pipeline, lead_totals=(steps["leads"], steps["converted"]))
    colors = dict(
        Stage.objects.filter(
            pk__in=[row["stage_id"] for row in figures["pipeline_distribution"]]
        ).values_list("pk", "color")
    )
    distribution = [
        {
            "pipeline_name": pipeline_name,
            "stages": [
                {
                    **row,
                    "color": colors.get(row["stage_id"]),
                    "label": f"{row['stage_name']} · {row['count']}",
                }
                for row in rows
            ],
        }
        for pipeline_name, rows in groupby(
            figures["pipeline_distribution"], key=lambda row: row["pipeline_name"]
        )
    ]
    owns_activities = activity_owns_any(user=user)
    return {
        "figures": figures,
        "distribution": distribution,
        "funnel": funnel,
        "agenda": activity_agenda(user=user, owner=user, everyone=not owns_activities),
        "agenda_everyone": not owns_activities,
        "recent_won": list(opportunity_recent_won(user=user, pipeline=pipeline)),
        "pipelines": list(Pipeline.objects.filter(is_active=True).order_by("sequence", "name", "pk")),
        "selected_pipeline": pipeline,
        "shortcuts": _shortcuts(request),
        # One query per kind of record (leads, deals), whatever the number of rules or records.
        "my_next_actions": next_actions_mine(user=user, limit=MY_NEXT_ACTIONS),
    }
