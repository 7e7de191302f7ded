"""Reads that carry rules for the activities app. The conventions are crm.selectors'."""

import copy
import datetime
import hashlib
import hmac
from dataclasses import dataclass, field

from dateutil.rrule import rrulestr
from django.core.exceptions import ValidationError
from django.db.models import Count, Exists, F, Model, OuterRef, Q, QuerySet, Subquery, Window
from django.db.models.functions import Coalesce, RowNumber, TruncDate
from django.utils import timezone

from activities.attachables import attachable_model, attachables
from activities.filters import ActivityFilter, ActivityTemplateFilter, AttachmentFilter, NoteFilter
from activities.models import (
    CLOSED_ACTIVITY_STATUSES,
    Activity,
    ActivityTemplate,
    ActivityType,
    Attachment,
    CalendarFeed,
    EmailMessage,
    Mailbox,
    Note,
)
from crm.actors import Actor, is_system
from crm.filters import filter_queryset
from crm.selectors import (
    Filters,
    owned_records_owned_by,
    owned_records_visible_listed,
    owned_records_visible_to,
    record_visible_to,
    register_record_access,
    same_for_every_reader,
)

RELATED = ("lead", "opportunity", "contact", "account")


def activity_visible_to(user: Actor) -> QuerySet[Activity]:
    return owned_records_visible_to(Activity.objects.all(), user)


register_record_access(Activity, visible_to=activity_visible_to, listed=owned_records_visible_listed)


@same_for_every_reader
def activity_list(*, user: Actor, filters: Filters = None) -> QuerySet[Activity]:
    return filter_queryset(
        ActivityFilter, activity_visible_to(user).select_related("owner"), filters, reader=user
    )


# What an agenda shows of an activity: its type, subject, due date and state, and the name of the record
# it is about (the four relations' ``__str__``).
AGENDA_FIELDS = (
    "activity_type",
    "subject",
    "due_date",
    "status",
    *RELATED,
    "lead__name",
    "opportunity__name",
    "contact__first_name",
    "contact__last_name",
    "account__name",
)


@dataclass
class Agenda:
    overdue: list[Activity]
    upcoming: list[Activity]


def activity_owns_any(*, user: Actor) -> bool:
    """Whether ``user`` owns any activity: a first login (or a new rep) owns none, and its personal views
    (my activities, my calendar) then show everyone's rather than an empty page."""
    return user.is_authenticated and activity_owned_by(user).exists()


def activity_owned_by(user: Actor) -> QuerySet[Activity]:
    """The activities ``user`` owns: those ``activity_visible_to`` shows them as theirs, read without the
    rule's subqueries (``owned_records_owned_by``)."""
    return owned_records_owned_by(Activity.objects.all(), user)


def activity_agenda(
    *,
    user: Actor,
    owner,
    now: datetime.datetime | None = None,
    days: int = 7,
    limit: int = 8,
    everyone: bool = False,
) -> Agenda:
    """``owner``'s open activities (``everyone``: all those ``user`` sees): the overdue ones (oldest
    first) and those due in the next ``days``.

    Two queries, each with the related records joined, whatever the number of activities. Only what an
    agenda shows is read (``AGENDA_FIELDS``): the four related records' every column made compiling
    each query cost more than running it.
    """
    now = now or timezone.now()
    if everyone:
        mine = activity_visible_to(user)
    elif owner is not None and getattr(owner, "pk", owner) == user.pk:
        mine = activity_owned_by(user)  # one's own agenda: the dashboard's
    else:
        mine = activity_visible_to(user).filter(owner=owner)
    open_activities = (
        mine.exclude(status__in=CLOSED_ACTIVITY_STATUSES).select_related(*RELATED).only(*AGENDA_FIELDS)
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
    month costs three queries, not thousands of rows); each day still counts all of its activities.
    A recurring activity (its RRULE) is listed on each day it happens again in the period.
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
    # Recurring activities that started before ``end`` show on each day they happen again (one query).
    recurring = activity_visible_to(user).filter(due_date__lt=end).exclude(recurrence="")
    if owner is not None:
        recurring = recurring.filter(owner=owner)
    for activity in recurring.select_related("owner", *RELATED).order_by("due_date", "pk"):
        for moment in activity_occurrences(activity, start, end):
            occurrence = copy.copy(activity)
            occurrence.due_date = moment
            occurrence.is_occurrence = True
            calendar_day = days.setdefault(moment.date(), CalendarDay())
            calendar_day.count += 1
            if per_day is None or len(calendar_day.activities) < per_day:
                calendar_day.activities.append(occurrence)
    for calendar_day in days.values():
        calendar_day.activities.sort(key=lambda a: (a.due_date, a.pk))
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


# --- files and notes on records ------------------------------------------------------------------------


def _on_visible_records(queryset: QuerySet, user: Actor) -> QuerySet:
    """The rows of ``queryset`` (files or notes) kept on records ``user`` sees: one condition per kind."""
    condition = Q(pk__in=[])
    for record_type, model in attachables().items():
        condition |= Q(record_type=record_type, record_id__in=record_visible_to(model, user).values("pk"))
    return queryset.filter(condition)


def attachment_visible_to(user: Actor) -> QuerySet[Attachment]:
    return _on_visible_records(Attachment.objects.all(), user)


def attachment_list(*, user: Actor, filters: Filters = None) -> QuerySet[Attachment]:
    queryset = attachment_visible_to(user).select_related("uploaded_by")
    return filter_queryset(AttachmentFilter, queryset, filters)


def note_visible_to(user: Actor) -> QuerySet[Note]:
    return _on_visible_records(Note.objects.all(), user)


def note_list(*, user: Actor, filters: Filters = None) -> QuerySet[Note]:
    return filter_queryset(NoteFilter, note_visible_to(user).select_related("author"), filters)


def record_of(*, user: Actor, record_type: str, record_id) -> Model:
    """The record a file or note names, if ``user`` sees it; otherwise a 400 on ``record_id``, as for
    an id that does not exist (another team's lead is as unknown here as at its own URL)."""
    model = attachable_model(record_type)
    try:
        record = record_visible_to(model, user).filter(pk=int(record_id)).first()
    except (TypeError, ValueError, OverflowError):
        record = None
    if record is None:
        raise ValidationError({"record_id": f"No {model._meta.verbose_name} with the id {record_id}."})
    return record


def activity_template_list(*, user: Actor, filters: Filters = None) -> QuerySet[ActivityTemplate]:
    return filter_queryset(ActivityTemplateFilter, ActivityTemplate.objects.all(), filters)


# --- the personal calendar feed ------------------------------------------------------------------------

FEED_PREFIX_LENGTH = 10


def calendar_token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def calendar_feed_owner(*, token: str):
    """The active user whose feed ``token`` opens, or None. The row is found by the token's first
    characters and the hash compared in constant time, so a wrong token says nothing of a right one."""
    if not token or len(token) > 200 or len(token) <= FEED_PREFIX_LENGTH:
        return None
    feed = CalendarFeed.objects.filter(token_prefix=token[:FEED_PREFIX_LENGTH]).select_related("user").first()
    if feed is None or not hmac.compare_digest(feed.token_hash, calendar_token_hash(token)):
        return None
    return feed.user if feed.user.is_active else None


def calendar_feed_activities(*, owner) -> QuerySet:
    """What a user's feed carries: their own dated activities (cancelled ones too, marked so), as rows
    of the columns the feed writes (activities.ical.FEED_COLUMNS)."""
    from activities.ical import FEED_COLUMNS

    return (
        Activity.objects.filter(owner=owner, due_date__isnull=False)
        .order_by("due_date", "pk")
        .values_list(*FEED_COLUMNS)
    )


def calendar_feed_version(*, owner) -> str:
    """A fingerprint of what ``owner``'s feed holds (how many dated activities, the latest change): a
    write, a delete or a reassignment changes it, so a cached feed under it is current."""
    from django.db.models import Max

    figures = Activity.objects.filter(owner=owner, due_date__isnull=False).aggregate(
        n=Count("pk"), changed=Max("updated_at")
    )
    changed = figures["changed"].isoformat() if figures["changed"] else "-"
    return hashlib.sha256(f"{owner.pk}:{figures['n']}:{changed}".encode()).hexdigest()[:32]


def activity_occurrences(
    activity: Activity, start: datetime.datetime, end: datetime.datetime, limit: int = 500
) -> list[datetime.datetime]:
    """When a recurring ``activity`` happens in [start, end), its first time (its due date) excluded."""
    if not activity.recurrence or activity.due_date is None:
        return []
    local = timezone.localtime(activity.due_date)
    try:
        rule = rrulestr(activity.recurrence.removeprefix("RRULE:"), dtstart=local)
        times = []
        for moment in rule.xafter(max(start, local) - datetime.timedelta(microseconds=1), count=limit):
            if moment >= end:
                break
            if moment != local:
                times.append(moment)
        return times
    except (ValueError, TypeError, OverflowError):
        return []


# --- email --------------------------------------------------------------------------------------------------


def mailbox_visible_to(user: Actor) -> QuerySet[Mailbox]:
    """Shared mailboxes and everyone's for those who manage them all (CRM Admins); a user's own else."""
    mailboxes = Mailbox.objects.select_related("owner")
    if is_system(user) or user.has_perm("activities.manage_all_mailboxes"):
        return mailboxes
    return mailboxes.filter(owner_id=user.pk) if user.pk else mailboxes.none()


def email_message_visible_to(user: Actor) -> QuerySet[EmailMessage]:
    """The messages logged on an activity the user sees, and those the user sent that are on their way."""
    messages = EmailMessage.objects.all()
    if is_system(user):
        return messages
    through = EmailMessage.activities.through
    seen = through.objects.filter(emailmessage_id=OuterRef("pk"), activity__in=activity_visible_to(user))
    return messages.filter(Exists(seen) | Q(outgoing__sent_by_id=user.pk, outgoing__isnull=False))
