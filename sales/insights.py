"""Rotting deals: each stage's usual time, from stage history, refreshed daily by beat
(``sales.tasks.stage_timings_refresh``); a deal longer in its stage than CRM_ROTTING_FACTOR × that is
flagged on the boards and lists (``Opportunity.is_rotting``)."""

from django.conf import settings
from django.utils import timezone

from crm.actors import Actor
from crm.insights import stage_timings_store
from sales.models import OpportunityStageChange
from sales.reports import stage_time_figures


def stage_timings_refresh(*, user: Actor) -> int:
    """The mean days of the ended stays in each open stage with at least CRM_ROTTING_MIN_STAYS of them;
    one grouped query over stage history."""
    now = timezone.now()
    timings = {}
    for row in stage_time_figures(OpportunityStageChange.objects.all(), now):
        if row["completed"] >= settings.CRM_ROTTING_MIN_STAYS and row["completed_time"] is not None:
            days = row["completed_time"].total_seconds() / 86400 / row["completed"]
            timings[row["to_stage_id"]] = (days, row["completed"])
    return stage_timings_store(user=user, timings=timings, now=now)
