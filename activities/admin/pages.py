"""The activity admin's calendar, and what activities add to lead, deal, contact and account pages."""

import calendar
import datetime

from django.contrib import messages
from django.core.exceptions import PermissionDenied
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import timezone
from django.utils.dateparse import parse_date
from django.utils.http import urlencode
from django.utils.text import Truncator

from activities.models import ActivityStatus
from activities.selectors import CalendarDay, activity_calendar, activity_owns_any, activity_timeline
from crm.admin.base import with_changelist_tool
from crm.admin.record import RecordAction, TimelineEntry

VIEWS = ("month", "week")
# How many activities a day's cell lists before "+ N more" (a link to that day's list).
PER_DAY = {"month": 4, "week": 12}


def _local_midnight(day: datetime.date) -> datetime.datetime:
    return timezone.make_aware(datetime.datetime.combine(day, datetime.time.min))


def _day_after(day: datetime.date) -> datetime.date | None:
    """The next day, or None after the calendar's last (31 December 9999)."""
    return day + datetime.timedelta(days=1) if day < datetime.date.max else None


def _shifted(day: datetime.date, days: int) -> datetime.date | None:
    """``day`` moved by ``days``, or None past either end of the calendar (year 1 to 9999)."""
    try:
        return day + datetime.timedelta(days=days)
    except OverflowError:
        return None


def _bound(day: datetime.date | None, *, upper: bool) -> datetime.datetime:
    """Local midnight of ``day`` as a query bound; past the calendar's end (None) or where the local
    midnight has no UTC equivalent, the earliest or latest instant there is."""
    if day is not None:
        try:
            moment = _local_midnight(day)
            moment.astimezone(datetime.UTC)
            return moment
        except OverflowError:
            pass
    extreme = datetime.datetime.max if upper else datetime.datetime.min
    return extreme.replace(tzinfo=datetime.UTC)


def _period(
    anchor: datetime.date, view: str
) -> tuple[datetime.date, datetime.date, datetime.date | None, str]:
    """First and last day shown, the day after (None at the calendar's end) and the heading.

    Whole weeks, except where the calendar itself starts or ends (1 January 1 is a Monday; the week
    of 31 December 9999 is cut after its Friday)."""
    if view == "month":
        first = anchor.replace(day=1)
        last = first.replace(day=calendar.monthrange(first.year, first.month)[1])
        start = first - datetime.timedelta(days=first.weekday())
        end = _shifted(last, 7 - last.weekday())
        heading = f"{first:%B} {first.year:04d}"
    else:
        start = anchor - datetime.timedelta(days=anchor.weekday())
        end = _shifted(start, 7)
        heading = f"Week of {start.day} {start:%B} {start.year:04d}"
    shown_last = end - datetime.timedelta(days=1) if end is not None else datetime.date.max
    return start, shown_last, end, heading


class CalendarAdminMixin:
    """``calendar/``: a month or week of activities, the user's own unless ``everyone=1``."""

    def get_urls(self):
        return [
            path(
                "calendar/",
                self.admin_site.admin_view(self.calendar_view),
                name="activities_activity_calendar",
            ),
            path(
                "calendar/feed/",
                self.admin_site.admin_view(self.calendar_feed_view),
                name="activities_activity_calendar_feed",
            ),
            *super().get_urls(),
        ]

    def changelist_view(self, request, extra_context=None):
        calendar_url = reverse("admin:activities_activity_calendar")
        return super().changelist_view(request, with_changelist_tool(extra_context, "Calendar", calendar_url))

    def calendar_feed_view(self, request):
        from activities.admin.records import calendar_feed_regenerate_view

        return calendar_feed_regenerate_view(self, request)

    def calendar_anchor(self, request) -> datetime.date:
        """The day asked for (``?date=YYYY-MM-DD``), or today with a message when it is not a date."""
        today = timezone.localdate()
        value = request.GET.get("date", "")
        if not value:
            return today
        try:
            anchor = parse_date(value)
        except ValueError:  # well formed but impossible: 2026-13-45, 2026-02-30
            anchor = None
        if anchor is None:
            self.message_user(
                request, f"“{value}” is not a date (YYYY-MM-DD): showing today instead.", messages.WARNING
            )
            return today
        return anchor

    def calendar_view(self, request):
        if not self.has_view_permission(request):
            raise PermissionDenied
        view = request.GET.get("view") if request.GET.get("view") in VIEWS else "month"
        today = timezone.localdate()
        anchor = self.calendar_anchor(request)
        # Unasked, a user who owns no activity (a first login) sees everyone's rather than nothing.
        asked = request.GET.get("everyone")
        everyone = asked == "1" if asked is not None else not activity_owns_any(user=request.user)
        fallback_everyone = asked is None and everyone

        start, last, end, heading = _period(anchor, view)
        if view == "month":
            first = anchor.replace(day=1)
            previous = _shifted(first, -1)
            previous = previous.replace(day=1) if previous is not None else None
            following = _day_after(first.replace(day=calendar.monthrange(first.year, first.month)[1]))
        else:
            previous, following = _shifted(start, -7), end

        by_day = activity_calendar(
            user=request.user,
            start=_bound(start, upper=False),
            end=_bound(end, upper=True),
            owner=None if everyone else request.user,
            per_day=PER_DAY[view],
        )
        days = []
        for day in (start + datetime.timedelta(days=n) for n in range((last - start).days + 1)):
            listed = by_day.get(day, CalendarDay())
            days.append(
                {
                    "date": day,
                    "in_period": view == "week" or day.month == anchor.month,
                    "is_today": day == today,
                    "activities": listed.activities,
                    "count": listed.count,
                    "more": listed.count - len(listed.activities),
                    "more_url": self.day_list_url(day, None if everyone else request.user),
                    "add_url": self.add_url_for(day),
                }
            )

        def link(**changes) -> str:
            params = {"view": view, "date": anchor.isoformat(), **({"everyone": "1"} if everyone else {})}
            params.update(changes)
            return "?" + urlencode({key: value for key, value in params.items() if value})

        context = {
            **self.admin_site.each_context(request),
            "title": "Calendar",
            "opts": self.opts,
            "view": view,
            "heading": heading,
            "weeks": [days[i : i + 7] for i in range(0, len(days), 7)],
            "weekdays": [calendar.day_abbr[n] for n in range(7)],
            "everyone": everyone,
            "fallback_everyone": fallback_everyone,
            "count": sum(day["count"] for day in days),
            "links": {
                # None at either end of the calendar: there is no month before year 1 or after 9999.
                "previous": link(date=previous.isoformat()) if previous is not None else None,
                "next": link(date=following.isoformat()) if following is not None else None,
                "today": link(date=today.isoformat()),
                "month": link(view="month"),
                "week": link(view="week"),
                "mine": link(everyone="0"),
                "everyone": link(everyone="1"),
            },
            "changelist_url": reverse("admin:activities_activity_changelist"),
        }
        request.current_app = self.admin_site.name
        return TemplateResponse(request, "admin/activities/activity/calendar.html", context)

    def day_list_url(self, day: datetime.date, owner) -> str:
        """The activity list of one day (the changelist's date hierarchy), for the ones not shown."""
        params = {"due_date__year": day.year, "due_date__month": day.month, "due_date__day": day.day}
        if owner is not None:
            params["owner__id__exact"] = owner.pk
        return reverse("admin:activities_activity_changelist") + "?" + urlencode(params)

    def add_url_for(self, day: datetime.date) -> str:
        due = timezone.make_aware(datetime.datetime.combine(day, datetime.time(9, 0)))
        return reverse("admin:activities_activity_add") + "?" + urlencode({"due_date": due.isoformat()})


# --- what activities add to a record's change page -------------------------------------------------


def _person(obj) -> str:
    model = obj._meta.model_name
    if model == "lead":
        return obj.contact_name or obj.company_name or obj.name
    if model == "opportunity":
        return str(obj.contact) if obj.contact_id else (str(obj.account) if obj.account_id else obj.name)
    return str(obj)


def _related_params(obj) -> dict[str, int]:
    """The activity's links for a record: the record itself, and the account and contact around it."""
    model = obj._meta.model_name
    params = {model: obj.pk}
    if model in ("opportunity", "contact") and obj.account_id:
        params["account"] = obj.account_id
    if model == "opportunity" and obj.contact_id:
        params["contact"] = obj.contact_id
    return params


def quick_activity_actions(*, request, obj) -> list[RecordAction]:
    """ "Log a call" (done now) and "Schedule a meeting" (tomorrow 10:00), prefilled, back here after."""
    if not request.user.has_perm("activities.add_activity"):
        return []
    opts = obj._meta
    back = reverse(f"admin:{opts.app_label}_{opts.model_name}_change", args=[obj.pk])
    add = reverse("admin:activities_activity_add")
    now = timezone.localtime().replace(second=0, microsecond=0)
    tomorrow = (now + datetime.timedelta(days=1)).replace(hour=10, minute=0)
    person = _person(obj)
    call = {
        **_related_params(obj),
        "activity_type": "call",
        "status": ActivityStatus.COMPLETED,
        "subject": f"Call with {person}",
        "due_date": now.isoformat(),
        "next": back,
    }
    meeting = {
        **_related_params(obj),
        "activity_type": "meeting",
        "status": ActivityStatus.SCHEDULED,
        "subject": f"Meeting with {person}",
        "due_date": tomorrow.isoformat(),
        "next": back,
    }
    return [
        RecordAction("Log a call", f"{add}?{urlencode(call)}", css_class="crm-quick-activity"),
        RecordAction("Schedule a meeting", f"{add}?{urlencode(meeting)}", css_class="crm-quick-activity"),
    ]


def activity_timeline_entries(*, request, obj, limit: int) -> list[TimelineEntry]:
    """The record's activities as timeline entries (one query)."""
    entries = []
    for activity in activity_timeline(user=request.user, record=obj)[:limit]:
        meta = [activity.get_status_display()]
        if activity.owner_id:
            meta.append(activity.owner.get_full_name() or activity.owner.get_username())
        css = "is-done" if activity.status == ActivityStatus.COMPLETED else ""
        if activity.is_overdue:
            css = "is-overdue"
            meta.append("overdue")
        entries.append(
            TimelineEntry(
                when=activity.happened_at,
                kind="activity",
                title=f"{activity.get_activity_type_display()}: {activity.subject}",
                url=reverse("admin:activities_activity_change", args=[activity.pk]),
                meta=" · ".join(meta),
                detail=Truncator(activity.description).chars(240),
                css_class=css,
            )
        )
    return entries
