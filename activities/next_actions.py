"""activities' next-best-action rules, on leads and deals alike: an overdue activity, a meeting held with
no follow-up since, no next step planned at all; and the links that make "log a call", "schedule a
meeting" or "schedule a task" one click (the activity form, filled in, back to the record after)."""

import datetime

from django.db.models import (
    BooleanField,
    CharField,
    Count,
    DateTimeField,
    Exists,
    IntegerField,
    JSONField,
    OuterRef,
    Q,
    Subquery,
)
from django.db.models.functions import Coalesce, JSONObject
from django.utils import timezone
from django.utils.formats import date_format
from django.utils.http import urlencode

from activities.admin.pages import _person, _related_params
from activities.models import CLOSED_ACTIVITY_STATUSES, Activity, ActivityStatus, ActivityType
from activities.selectors import activity_visible_to
from crm.admin_links import admin_change_url, admin_url
from crm.next_actions import (
    Context,
    JSONPart,
    NextAction,
    NextActionRule,
    days_since,
    json_datetime,
    plural,
    record_admin_url,
    register_next_action_link,
    register_next_action_rule,
)
from crm.selectors import owned_records_visible_listed

# The record kinds these rules read, and the activity's link to each.
RECORDS = {"crm.lead": "lead", "sales.opportunity": "opportunity"}


def _open(fk: str):
    return Activity.objects.filter(**{fk: OuterRef("pk")}).exclude(status__in=CLOSED_ACTIVITY_STATUSES)


def _visible_activities(context: Context):
    """The activities the reader sees, their owners listed once for every rule of the call: the rule
    is repeated in a subquery per record and per annotation (a rep's dashboard: 78 -> 63 ms)."""
    rule = context.remember(
        "visible_activities", lambda: owned_records_visible_listed(Activity, context.user)
    )
    return activity_visible_to(context.user) if rule is None else Activity.objects.filter(rule)


def _overdue_annotations(fk: str):
    def annotations(context: Context) -> dict:
        # What the reader sees of them: the subject of a colleague's hidden task is not shown.
        overdue = (
            _visible_activities(context)
            .filter(**{fk: OuterRef("pk")}, due_date__lt=context.now)
            .exclude(status__in=CLOSED_ACTIVITY_STATUSES)
        )
        # The first one's id, subject, type and due date in one subquery: four would each repeat the
        # reader's visibility of activities, to compile and to run.
        first = overdue.order_by("due_date", "pk").values(
            first=JSONObject(id="pk", subject="subject", type="activity_type", due="due_date")
        )
        return {
            "nba_overdue_count": Subquery(
                overdue.order_by().values(fk).annotate(count=Count("pk")).values("count")
            ),
            "nba_overdue": Subquery(first[:1], output_field=JSONField()),
        }

    return annotations


def _overdue(record, context: Context) -> NextAction:
    first = record.nba_overdue
    kind = ActivityType(first["type"]).label.lower()
    days = days_since(json_datetime(first["due"]), context)
    more = record.nba_overdue_count - 1
    due = f"due {plural(days, 'day')} ago" if days else "due earlier today"
    reason = f"Overdue {kind}: “{first['subject']}”, {due}"
    if more:
        reason += f" (and {more} more)"
    return NextAction(
        rule="activity_overdue",
        reason=reason,
        label=f"Open the {kind}",
        kind="open",
        url=admin_change_url(Activity._meta, first["id"]),
        urgency=days,
        target_type="activity",
        target_id=first["id"],
    )


def _meeting_annotations(fk: str):
    def annotations(context: Context) -> dict:
        # Anything but the meeting planned after it, or logged after it (a call, an email), follows it
        # up, whoever owns it.
        follow_up = (
            Activity.objects.filter(**{fk: OuterRef(fk)})
            .exclude(status=ActivityStatus.CANCELLED)
            .exclude(pk=OuterRef("pk"))
            .filter(Q(due_date__gt=OuterRef("held_at")) | Q(created_at__gt=OuterRef("held_at")))
        )
        held = (
            _visible_activities(context)
            .filter(**{fk: OuterRef("pk")}, activity_type=ActivityType.MEETING)
            .filter(status=ActivityStatus.COMPLETED)
            .annotate(held_at=Coalesce("completed_at", "due_date", "updated_at"), followed=Exists(follow_up))
            .order_by("-held_at", "-pk")
        )
        # The last meeting held, and whether anything followed it, in one subquery: one per value
        # repeated the meeting's subquery in the follow-up's, to build, compile and run.
        meeting = held.values(
            meeting=JSONObject(id="pk", subject="subject", at="held_at", followed="followed")
        )
        return {"nba_meeting": Subquery(meeting[:1], output_field=JSONField())}

    return annotations


MEETING_PARTS = {
    "nba_meeting_id": JSONPart("nba_meeting", "id", IntegerField()),
    "nba_meeting_subject": JSONPart("nba_meeting", "subject", CharField()),
    "nba_meeting_at": JSONPart("nba_meeting", "at", DateTimeField()),
    "nba_meeting_followed": JSONPart("nba_meeting", "followed", BooleanField()),
}


def _meeting(record, context: Context) -> NextAction:
    return NextAction(
        rule="meeting_without_follow_up",
        reason=f"Meeting “{record.nba_meeting_subject}” on "
        f"{date_format(timezone.localtime(record.nba_meeting_at))}, no follow-up since",
        label="Schedule a follow-up",
        kind="task",
        urgency=days_since(record.nba_meeting_at, context),
        target_type="activity",
        target_id=record.nba_meeting_id,
    )


def _no_next_step(record, context: Context) -> NextAction:
    return NextAction(
        rule="no_next_step",
        reason="No next step planned: no open activity",
        label="Schedule a next step",
        kind="task",
        urgency=days_since(record.last_activity_at or record.created_at, context),
    )


def _rules(fk: str) -> list[NextActionRule]:
    return [
        NextActionRule(
            key="activity_overdue",
            weight=85,
            annotations=_overdue_annotations(fk),
            condition=lambda context: Q(nba_overdue_count__gt=0),
            action=_overdue,
        ),
        NextActionRule(
            key="meeting_without_follow_up",
            weight=75,
            annotations=_meeting_annotations(fk),
            parts=MEETING_PARTS,
            condition=lambda context: Q(nba_meeting_id__isnull=False, nba_meeting_followed=False),
            action=_meeting,
        ),
        NextActionRule(
            key="no_next_step",
            weight=35,
            annotations=lambda context: {"nba_planned": Exists(_open(fk))},
            condition=lambda context: Q(nba_planned=False),
            action=_no_next_step,
        ),
    ]


# --- the links: the activity form, filled in ----------------------------------------------------------

LINKS = {
    # kind: (activity type, status, subject, when)
    "call": (ActivityType.CALL, ActivityStatus.COMPLETED, "Call with {person}", "now"),
    "meeting": (ActivityType.MEETING, ActivityStatus.SCHEDULED, "Meeting with {person}", "tomorrow"),
    "task": (ActivityType.TASK, ActivityStatus.SCHEDULED, "Follow up with {person}", "tomorrow"),
}


def activity_link(*, record, action: NextAction, user) -> str:
    """The activity form for ``action``'s kind, filled in for ``record``; "" without the right to add."""
    if not user.has_perm("activities.add_activity"):
        return ""
    activity_type, status, subject, when = LINKS[action.kind]
    now = timezone.localtime().replace(second=0, microsecond=0)
    if when == "tomorrow":
        now = (now + datetime.timedelta(days=1)).replace(hour=10, minute=0)
    params = {
        **_related_params(record),
        "activity_type": activity_type,
        "status": status,
        "subject": subject.format(person=_person(record)),
        "due_date": now.isoformat(),
        "next": record_admin_url(record),
    }
    return f"{admin_url('admin:activities_activity_add')}?{urlencode(params)}"


def register() -> None:
    for model_label, fk in RECORDS.items():
        for rule in _rules(fk):
            register_next_action_rule(model_label, rule)
    for kind in LINKS:
        register_next_action_link(kind, activity_link)
