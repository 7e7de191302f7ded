"""Activity reminders, the daily digest of a user's overdue and today's activities, and rotting deals.

Run by ``celery beat`` (activities/tasks.py). A reminder fires once: a run claims the due reminders
(``SKIP LOCKED`` rows, then ``UPDATE … WHERE reminded_at IS NULL``) in the transaction that writes
their notifications and their ``activity.due`` events, so two beat processes, or a worker killed
mid-run, never send one twice (a killed run rolls back and the next claims the rest again).
Rotting lives here rather than in sales because a deal's last activity is an activity.
"""

import datetime
import logging

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max, OuterRef, Subquery
from django.db.models.functions import Coalesce, Greatest
from django.utils import timezone

from activities.models import CLOSED_ACTIVITY_STATUSES, Activity, ActivityStatus
from crm.actors import SYSTEM
from crm.events import register_consumer, register_event_types
from crm.events.publishing import event_publish
from crm.events.registry import source_for
from crm.models import NotificationKind
from crm.notifications.consumers import admin_change_url, record_notifier
from crm.notifications.selectors import user_time_zones
from crm.notifications.services import notify
from sales.models import Opportunity, OpportunityStatus

logger = logging.getLogger("activities.reminders")

OPEN_STATUSES = [status for status in ActivityStatus.values if status not in CLOSED_ACTIVITY_STATUSES]

activity_url = admin_change_url("admin:activities_activity_change")
opportunity_url = admin_change_url("admin:sales_opportunity_change")


def register() -> None:
    register_event_types("activity.due")
    register_consumer(
        "activity.*",
        record_notifier(
            record_type="activity", noun="activity", url=activity_url, parent_owners=_linked_record_owners
        ),
        name="notifications.activity",
        batch=True,
    )


def _linked_record_owners(records: list[dict]) -> list[int | None]:
    """For each activity (as the API shows it), the owner of the record it is logged on: its lead,
    else its opportunity, contact or account. One query per kind of record, whatever the number."""
    from crm.models import Account, Contact, Lead

    kinds = (
        ("lead_id", Lead),
        ("opportunity_id", Opportunity),
        ("contact_id", Contact),
        ("account_id", Account),
    )
    linked = [
        next(((field, record[field]) for field, _ in kinds if record.get(field)), None) for record in records
    ]
    owners: dict[tuple[str, int], int | None] = {}
    for field, model in kinds:
        ids = {pk for link in linked if link and link[0] == field for pk in [link[1]]}
        if ids:
            rows = model._default_manager.filter(pk__in=ids).values_list("pk", "owner_id")
            owners.update({(field, pk): owner for pk, owner in rows})
    return [owners.get(link) if link else None for link in linked]


def _local(value: datetime.datetime | None, tz) -> str:
    return timezone.localtime(value, tz).strftime("%Y-%m-%d %H:%M") if value else "no due date"


def activity_reminders_send(*, now: datetime.datetime | None = None, batch: int = 100) -> int:
    """Send every reminder that is due and not yet sent; returns how many this run sent."""
    now = now or timezone.now()
    sent = 0
    while True:
        with transaction.atomic():
            candidates = list(
                Activity.objects.select_for_update(skip_locked=True)
                .filter(remind_at__lte=now, reminded_at__isnull=True)
                .values_list("pk", flat=True)
                .order_by("remind_at", "pk")[:batch]
            )
            if not candidates:
                break
            # The claim: only the run whose UPDATE changes a row sends its reminder (SQLite has no row
            # locks; there this conditional UPDATE alone keeps two runs apart).
            claimed = []
            for pk in candidates:
                if Activity.objects.filter(pk=pk, reminded_at__isnull=True).update(reminded_at=now):
                    claimed.append(pk)
            activities = Activity.objects.filter(pk__in=claimed).select_related("owner")
            for activity in activities:
                _remind(activity)
            sent += len(claimed)
        if len(candidates) < batch:
            break
    return sent


def _remind(activity: Activity) -> None:
    if activity.status in CLOSED_ACTIVITY_STATUSES:
        return  # done or cancelled meanwhile: claimed, nothing to say
    source = source_for(Activity)
    event = event_publish(
        type="activity.due",
        user=SYSTEM,
        record=source.serialize(activity.pk) if source is not None else None,
        record_type="activity",
        record_id=activity.pk,
    )
    owner = activity.owner
    if owner is None:
        return
    tz = user_time_zones([owner])[owner.pk]
    notify(
        recipient=owner,
        kind=NotificationKind.REMINDER,
        event_id=f"reminder:{activity.pk}:{activity.remind_at.isoformat()}",
        title=f"Reminder: {activity.subject}",
        body=f"{activity.get_activity_type_display()} “{activity.subject}”, "
        f"due {_local(activity.due_date, tz)}.",
        url=activity_url(activity.pk),
        record_type="activity",
        record_id=activity.pk,
    )
    logger.info("Reminder sent", extra={"activity": activity.pk, "event": str(event.event_id)})


def activity_digest_send(*, now: datetime.datetime | None = None) -> int:
    """Send the daily digest to each user for whom it is CRM_DIGEST_HOUR (08:00) in their time zone
    and who has overdue activities or activities due today; once a day (keyed by their local date).
    Run every 15 minutes, so each time zone's hour is met."""
    now = now or timezone.now()
    # Anyone's "today" ends within 26 hours (UTC+14); activities due later concern no digest now.
    owners = list(
        get_user_model()
        .objects.filter(
            # One filter() call: the same activity is open and due soon enough.
            is_active=True,
            owned_activities__due_date__lt=now + datetime.timedelta(hours=26),
            owned_activities__status__in=OPEN_STATUSES,
        )
        .distinct()
    )
    zones = user_time_zones(owners)
    sent = 0
    for owner in owners:
        tz = zones[owner.pk]
        local = now.astimezone(tz)
        if local.hour != settings.CRM_DIGEST_HOUR:
            continue
        day_end = datetime.datetime.combine(local.date() + datetime.timedelta(days=1), datetime.time(), tz)
        activities = list(
            Activity.objects.filter(owner=owner, due_date__lt=day_end)
            .exclude(status__in=CLOSED_ACTIVITY_STATUSES)
            .order_by("due_date", "pk")
        )
        if not activities:
            continue
        overdue = [a for a in activities if a.due_date < now]
        today = [a for a in activities if a not in overdue]
        lines = [f"Overdue ({len(overdue)}):"] + [
            f"- {a.subject} (due {_local(a.due_date, tz)})" for a in overdue
        ]
        lines += [f"Today ({len(today)}):"] + [f"- {a.subject} at {_local(a.due_date, tz)}" for a in today]
        day = local.date().isoformat()
        with transaction.atomic():
            if notify(
                recipient=owner,
                kind=NotificationKind.DIGEST,
                event_id=f"digest:{day}",
                title=f"Your activities for {day}: {len(overdue)} overdue, {len(today)} today",
                body="\n".join(lines),
                url="/admin/activities/activity/",
            ):
                sent += 1
    return sent


def opportunity_rotting_notify(*, now: datetime.datetime | None = None) -> int:
    """Tell the owner of each open deal that has had no activity (no change of the deal, no activity
    logged or changed on it) for more days than its stage's ``rotting_days``; once per quiet spell."""
    now = now or timezone.now()
    last_activity = (
        Activity.objects.filter(opportunity=OuterRef("pk"))
        .order_by()
        .values("opportunity")
        .annotate(last=Max("updated_at"))
        .values("last")
    )
    deals = (
        Opportunity.objects.filter(
            status=OpportunityStatus.OPEN, stage__rotting_days__isnull=False, owner__isnull=False
        )
        .annotate(last_touch=Greatest("updated_at", Coalesce(Subquery(last_activity), "updated_at")))
        .select_related("stage", "owner")
    )
    sent = 0
    for deal in deals.iterator(chunk_size=500):
        if deal.last_touch > now - datetime.timedelta(days=deal.stage.rotting_days):
            continue
        days = (now - deal.last_touch).days
        with transaction.atomic():
            if notify(
                recipient=deal.owner,
                kind=NotificationKind.ROTTING,
                event_id=f"rotting:{deal.pk}:{deal.last_touch.isoformat()}",
                title=f"Deal rotting: {deal.name}",
                body=f"No activity on “{deal.name}” for {days} days (its stage {deal.stage.name} allows "
                f"{deal.stage.rotting_days}).",
                url=opportunity_url(deal.pk),
                record_type="opportunity",
                record_id=deal.pk,
            ):
                sent += 1
    return sent
