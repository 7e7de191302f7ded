"""Writes for the activities app. The conventions are crm.services'."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from activities.models import Activity, ActivityStatus
from crm.actors import Actor
from crm.models import Lead
from crm.scoring import lead_score_refresh
from crm.services import (
    owner_ensure_allowed,
    record_delete,
    record_ensure_changeable,
    record_lock,
    record_save,
    related_ensure_visible,
    with_default_owner,
)

# The records an activity is logged on: each must be one its author sees.
LINKS = ("lead", "opportunity", "contact", "account")


def _links_ensure_visible(*, user: Actor, activity: Activity | None, data: Mapping[str, Any]) -> None:
    for name in LINKS:
        record = data.get(name)
        if record is not None and (activity is None or record.pk != getattr(activity, f"{name}_id")):
            related_ensure_visible(user=user, record=record, field=name)


@transaction.atomic
def activity_create(*, user: Actor, data: Mapping[str, Any]) -> Activity:
    """Log an activity on a lead, opportunity, contact or account; completed ones get a completion time."""
    _links_ensure_visible(user=user, activity=None, data=data)
    return _rescore(record_save(instance=Activity(), data=with_default_owner(data, user), user=user))


@transaction.atomic
def activity_update(*, activity: Activity, user: Actor, data: Mapping[str, Any]) -> Activity:
    """Update an activity. Reopening a completed one clears its completion time unless one is given."""
    activity = record_lock(activity)
    record_ensure_changeable(user=user, record=activity)
    owner_ensure_allowed(user=user, record=activity, data=data)
    _links_ensure_visible(user=user, activity=activity, data=data)
    data = dict(data)
    reopened = (
        "status" in data
        and data["status"] != ActivityStatus.COMPLETED
        and activity.status == ActivityStatus.COMPLETED
    )
    if reopened and "completed_at" not in data:
        data["completed_at"] = None
    if "remind_at" in data and data["remind_at"] != activity.remind_at:
        activity.reminded_at = None  # a new reminder time: it fires again
    previous_lead_id = activity.lead_id
    activity = _rescore(record_save(instance=activity, data=data, user=user))
    if previous_lead_id and previous_lead_id != activity.lead_id:
        lead_score_refresh(lead=Lead.objects.get(pk=previous_lead_id))
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity, user: Actor) -> None:
    """Delete an activity; its lead loses the points the activity gave it (recent activity)."""
    record_ensure_changeable(user=user, record=activity)
    lead_id = activity.lead_id
    record_delete(instance=activity, user=user)
    if lead_id:
        lead = Lead.objects.filter(pk=lead_id).first()
        if lead is not None:
            lead_score_refresh(lead=lead)


def _rescore(activity: Activity) -> Activity:
    """Recent activity counts in a lead's score: keep it current."""
    if activity.lead_id:
        lead_score_refresh(lead=activity.lead)
    return activity
