"""Reads that carry rules for the activities app. The conventions are crm.selectors'."""

import datetime
from dataclasses import dataclass, field

from django.db.models import Count, F, Model, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from activities.filters import ActivityFilter
from activities.models import CLOSED_ACTIVITY_STATUSES, Activity, ActivityType
from crm.actors import Actor
from crm.filters import filter_queryset
from crm.selectors import Filters, owned_records_visible_to, register_record_access

RELATED = ("lead", "opportunity", "contact", "account")


def activity_visible_to(user: Actor) -> QuerySet[Activity]:
    return owned_records_visible_to(Activity.objects.all(), user)


register_record_access(Activity, visible_to=activity_visible_to)


def activity_list(*, user: Actor, filters: Filters = None) -> QuerySet[Activity]:
    return filter_queryset(ActivityFilter, activity_visible_to(user).select_related("owner"), filters)


@dataclass
class Agenda:
    overdue: list[Activity]
    upcoming: list[Activity]


def activity_agenda(
    *, user: Actor, owner, now: datetime.datetime | None = None, days: int = 7, limit: int = 8
) -> Agenda:
    """``owner``'s open activities: the overdue ones (oldest first) and those due in the next ``days``.

    Two queries, each with the related records joined, whatever the number of activities.
    """
    now = now or timezone.now()
    open_activities = (
        activity_visible_to(user)
        .filter(owner=owner)
        .exclude(status__in=CLOSED_ACTIVITY_STATUSES)
        .select_related(*RELATED)
    )
    overdue = open_activities.filter(due_date__lt=now).order_by("due_date", "pk")[:limit]
    upcoming = open_activities.filter(
        due_date__gte=now, due_date__lt=now + datetime.timedelta(days=days)
    ).order_by("due_date", "pk")[:limit]
    return Agenda(overdue=list(overdue), upcoming=list(upcoming))


@dataclass
class CalendarDay:
    """The activities a calendar lists on one day, and how many that day has in all."""

    activities: list[Activity] = field(default_factory=list)
    count: int = 0


def activity_calendar(
    *,
    user: Actor,
    start: datetime.datetime,
    end: datetime.datetime,
    owner=None,
    per_day: int | None = None,
) -> dict[datetime.date, CalendarDay]:
    """Activities due in [start, end) of ``owner`` (everyone's when None), by local day, in time order.

    ``per_day`` caps the activities listed on a day (numbered per day by the database, so a busy
    month costs two queries, not thousands of rows); each day still counts all of its activities.
    """
    queryset = activity_visible_to(user).filter(due_date__gte=start, due_date__lt=end)
    if owner is not None:
        queryset = queryset.filter(owner=owner)
    counts = dict(
        queryset.order_by()
        .annotate(day=TruncDate("due_date"))
        .values("day")
        .annotate(n=Count("pk"))
        .values_list("day", "n")
    )
    listed = queryset.select_related("owner", *RELATED)
    if per_day is not None:
        listed = listed.annotate(
            day_rank=Window(
                RowNumber(),
                partition_by=[TruncDate("due_date")],
                order_by=[F("due_date").asc(), F("pk").asc()],
            )
        ).filter(day_rank__lte=per_day)
    days: dict[datetime.date, CalendarDay] = {}
    for activity in listed.order_by("due_date", "pk"):
        day = timezone.localtime(activity.due_date).date()
        days.setdefault(day, CalendarDay(count=counts.get(day, 0))).activities.append(activity)
    return days


def activity_timeline(*, user: Actor, record) -> QuerySet[Activity]:
    """A record's activities, newest first: by completion, else due date, else creation time.

    An account's timeline also holds the activities of its contacts and opportunities.
    """
    field = record._meta.model_name
    match = Q(**{field: record})
    if field == "account":
        match |= Q(contact__account=record) | Q(opportunity__account=record)
    return (
        activity_visible_to(user)
        .filter(match)
        .select_related("owner")
        .annotate(happened_at=Coalesce("completed_at", "due_date", "created_at"))
        .order_by("-happened_at", "-pk")
    )


@dataclass(frozen=True)
class NextActivity:
    pk: int
    subject: str
    activity_type: str
    due_date: datetime.datetime | None

    @property
    def is_overdue(self) -> bool:
        return self.due_date is not None and self.due_date < timezone.now()

    def get_activity_type_display(self) -> str:
        return ActivityType(self.activity_type).label


def activity_next_by_record(*, user: Actor, model: type[Model], ids) -> dict[int, NextActivity]:
    """The next open activity (earliest due, undated last) of each ``model`` record in ``ids``.

    One query whatever the number of records: the records annotated with correlated subqueries, run
    over the ids of the cards a board shows rather than over every record of the pipeline.
    """
    field = model._meta.model_name
    upcoming = (
        activity_visible_to(user)
        .filter(**{field: OuterRef("pk")})
        .exclude(status__in=CLOSED_ACTIVITY_STATUSES)
        .order_by(F("due_date").asc(nulls_last=True), "pk")
    )
    columns = {
        name: Subquery(upcoming.values(name)[:1]) for name in ("pk", "subject", "activity_type", "due_date")
    }
    rows = (
        model._default_manager.filter(pk__in=list(ids))
        .annotate(**{f"next_{name}": expression for name, expression in columns.items()})
        .values("pk", *(f"next_{name}" for name in columns))
    )
    return {
        row["pk"]: NextActivity(
            pk=row["next_pk"],
            subject=row["next_subject"],
            activity_type=row["next_activity_type"],
            due_date=row["next_due_date"],
        )
        for row in rows
        if row["next_pk"] is not None
    }
