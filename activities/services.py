"""Writes for the activities app. The conventions are crm.services'."""

from collections.abc import Mapping
from typing import Any

from django.db import transaction

from activities.models import Activity, ActivityStatus
from crm.services import User, owner_ensure_allowed, record_lock, record_save, with_default_owner


@transaction.atomic
def activity_create(*, user: User | None = None, data: Mapping[str, Any]) -> Activity:
    """Log an activity on a lead, opportunity, contact or account; completed ones get a completion time."""
    return record_save(instance=Activity(), data=with_default_owner(data, user))


@transaction.atomic
def activity_update(*, activity: Activity, user: User | None = None, data: Mapping[str, Any]) -> Activity:
    """Update an activity. Reopening a completed one clears its completion time unless one is given."""
    activity = record_lock(activity)
    owner_ensure_allowed(user=user, record=activity, data=data)
    data = dict(data)
    reopened = (
        "status" in data
        and data["status"] != ActivityStatus.COMPLETED
        and activity.status == ActivityStatus.COMPLETED
    )
    if reopened and "completed_at" not in data:
        data["completed_at"] = None
    return record_save(instance=activity, data=data)
