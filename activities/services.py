"""Writes for the activities app. The conventions are crm.services'."""

from collections.abc import Iterable, Mapping
from typing import Any

from django.db import connection, transaction
from django.db.models import Max, OuterRef, Subquery

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
        # The lead it left may have lost its newest activity.
        lead_last_activity_refresh(lead_ids=[previous_lead_id])
        lead_score_refresh(lead=Lead.objects.get(pk=previous_lead_id))
    return activity


@transaction.atomic
def activity_delete(*, activity: Activity, user: Actor) -> None:
    """Delete an activity; its lead loses the points the activity gave it (recent activity)."""
    record_ensure_changeable(user=user, record=activity)
    lead_id = activity.lead_id
    record_delete(instance=activity, user=user)
    if lead_id:
        lead_last_activity_refresh(lead_ids=[lead_id])
        lead = Lead.objects.filter(pk=lead_id).first()
        if lead is not None:
            lead_score_refresh(lead=lead)


def _rescore(activity: Activity) -> Activity:
    """Recent activity counts in a lead's score: keep the lead's last activity and its score current."""
    if activity.lead_id:
        lead_last_activity_refresh(lead_ids=[activity.lead_id])
        lead = activity.lead
        lead.refresh_from_db(fields=["last_activity_at"])
        lead_score_refresh(lead=lead)
    return activity


def lead_last_activity_refresh(*, lead_ids: Iterable[int] | None = None) -> int:
    """Recompute ``Lead.last_activity_at`` (when its newest activity was logged) of ``lead_ids``, or of
    every lead when None (after activities were written in bulk: the seed); returns the leads written.

    The column is derived, like the score: an UPDATE of it alone, no new version of the lead and no
    change of its ``updated_at`` (the lead's ETag). Every service that adds, moves or deletes an
    activity calls it; so does anything that writes activities around them in bulk.
    """
    if lead_ids is not None:
        ids = sorted({pk for pk in lead_ids if pk is not None})
        if not ids:
            return 0
        last = (
            Activity.objects.filter(lead_id=OuterRef("pk"))
            .order_by()
            .values("lead_id")
            .annotate(last=Max("created_at"))
            .values("last")
        )
        return Lead.objects.filter(pk__in=ids).update(last_activity_at=Subquery(last))
    # Every lead: two set-based statements (a correlated subquery per lead of a million costs minutes).
    quote = connection.ops.quote_name
    lead, activity = quote(Lead._meta.db_table), quote(Activity._meta.db_table)
    last_activity_at = quote(Lead._meta.get_field("last_activity_at").column)
    lead_pk = quote(Lead._meta.pk.column)
    lead_id, created_at = (quote(Activity._meta.get_field(name).column) for name in ("lead", "created_at"))
    with connection.cursor() as cursor:
        cursor.execute(
            f"UPDATE {lead} SET {last_activity_at} = newest.last "
            f"FROM (SELECT {lead_id} AS lead_id, MAX({created_at}) AS last FROM {activity} "
            f"WHERE {lead_id} IS NOT NULL GROUP BY {lead_id}) AS newest "
            f"WHERE {lead}.{lead_pk} = newest.lead_id "
            f"AND ({lead}.{last_activity_at} IS NULL OR {lead}.{last_activity_at} <> newest.last)"
        )
        written = cursor.rowcount
        cursor.execute(
            f"UPDATE {lead} SET {last_activity_at} = NULL WHERE {last_activity_at} IS NOT NULL "
            f"AND NOT EXISTS (SELECT 1 FROM {activity} WHERE {activity}.{lead_id} = {lead}.{lead_pk})"
        )
        return written + cursor.rowcount
