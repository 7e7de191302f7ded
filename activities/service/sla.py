"""SLA clocks in business hours: the arithmetic over a working calendar, the policy a ticket gets,
its deadlines (with the time the clock stood while pending on the customer), its state and time left,
and the scan that warns assignees and tells queue managers of breaches.

Business time is counted in the calendar's time zone, day by day: each working span becomes two
instants in UTC before anything is added or subtracted, so a day on which the clocks change counts the
hours that really pass (and Python's same-zone wall-clock subtraction never enters into it).
"""

import datetime
import logging
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from django.db import transaction
from django.db.models import Q
from django.urls import reverse
from django.utils import timezone

from activities.service.models import (
    DONE_STATUSES,
    SlaPolicy,
    SlaState,
    Ticket,
    TicketStatus,
    WorkingCalendar,
)
from crm.models import NotificationKind
from crm.notifications.services import notify_many

logger = logging.getLogger("activities.sla")

UTC = datetime.UTC
MIDNIGHT = datetime.time(0)
# A calendar whose every day is a holiday would never end a target: give up after ten years.
MAX_DAYS = 3660
# The clock stands in these states: waiting on the customer, or resolved (a reopened ticket resumes).
STOPPED = (TicketStatus.PENDING_CUSTOMER, TicketStatus.RESOLVED)


@dataclass(frozen=True)
class Hours:
    """A working calendar in memory: what the arithmetic needs, loaded once per calendar."""

    tz: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    # weekday (0 = Monday) → spans (start, end) sorted; an end of 00:00 is midnight at the day's end
    spans: dict[int, tuple[tuple[datetime.time, datetime.time], ...]] = field(default_factory=dict)
    holidays: frozenset[datetime.date] = frozenset()
    always: bool = False  # around the clock: no calendar

    @classmethod
    def of(cls, calendar: WorkingCalendar | None) -> "Hours":
        if calendar is None:
            return ALWAYS
        spans: dict[int, list] = {}
        for hours in calendar.hours.all():
            spans.setdefault(hours.weekday, []).append((hours.start, hours.end))
        return cls(
            tz=ZoneInfo(calendar.time_zone),
            spans={day: tuple(sorted(items)) for day, items in spans.items()},
            holidays=frozenset(holiday.date for holiday in calendar.holidays.all()),
        )

    def windows(self, day: datetime.date):
        """The working spans of local ``day`` as (start, end) instants in UTC."""
        if day in self.holidays:
            return
        for start, end in self.spans.get(day.weekday(), ()):
            begin = datetime.datetime.combine(day, start, tzinfo=self.tz).astimezone(UTC)
            end_day = day + datetime.timedelta(days=1) if end == MIDNIGHT else day
            finish = datetime.datetime.combine(end_day, end, tzinfo=self.tz).astimezone(UTC)
            yield begin, finish

    def local_day(self, moment: datetime.datetime) -> datetime.date:
        return moment.astimezone(self.tz).date()


ALWAYS = Hours(always=True)


def business_seconds(hours: Hours, start: datetime.datetime, end: datetime.datetime) -> int:
    """The working seconds between ``start`` and ``end`` (0 when end is not after start)."""
    if end <= start:
        return 0
    start, end = start.astimezone(UTC), end.astimezone(UTC)
    if hours.always:
        return int((end - start).total_seconds())
    total = 0.0
    # A span ending at midnight belongs to the day before: start a day early.
    day = hours.local_day(start) - datetime.timedelta(days=1)
    last = hours.local_day(end)
    while day <= last:
        for begin, finish in hours.windows(day):
            low, high = max(begin, start), min(finish, end)
            if high > low:
                total += (high - low).total_seconds()
        day += datetime.timedelta(days=1)
    return int(total)


def business_add(hours: Hours, start: datetime.datetime, seconds: int) -> datetime.datetime:
    """The instant at which ``seconds`` of working time have passed since ``start``."""
    start = start.astimezone(UTC)
    if hours.always:
        return start + datetime.timedelta(seconds=seconds)
    if not hours.spans:
        raise ValueError("The calendar has no working hours.")
    left = datetime.timedelta(seconds=max(seconds, 0))
    day = hours.local_day(start) - datetime.timedelta(days=1)
    for _ in range(MAX_DAYS):
        for begin, finish in hours.windows(day):
            if finish <= start:
                continue
            low = max(begin, start)
            if low + left <= finish:
                return low + left
            left -= finish - low
        day += datetime.timedelta(days=1)
    raise ValueError("The target does not end within ten years of working time.")


# --- calendars, loaded once --------------------------------------------------------------------------


def hours_by_calendar(calendar_ids) -> dict[int, Hours]:
    """The Hours of each calendar in ``calendar_ids``: three queries whatever their number."""
    calendars = WorkingCalendar.objects.filter(pk__in=set(calendar_ids) - {None}).prefetch_related(
        "hours", "holidays"
    )
    return {calendar.pk: Hours.of(calendar) for calendar in calendars}


def policy_hours(policy: SlaPolicy | None, cache: dict[int, Hours] | None = None) -> Hours:
    if policy is None or policy.calendar_id is None:
        return ALWAYS
    if cache is not None and policy.calendar_id in cache:
        return cache[policy.calendar_id]
    hours = hours_by_calendar([policy.calendar_id])[policy.calendar_id]
    if cache is not None:
        cache[policy.calendar_id] = hours
    return hours


# --- which policy, which deadlines -------------------------------------------------------------------


def sla_policy_for(*, priority: str, tier: str | None) -> SlaPolicy | None:
    """The most specific active policy: priority and tier, priority alone, tier alone, any."""
    candidates = SlaPolicy.objects.filter(
        Q(priority=priority) | Q(priority=""), Q(account_tier=tier or "") | Q(account_tier=""), is_active=True
    ).select_related("calendar")
    ranked = sorted(candidates, key=lambda p: (p.priority == "", p.account_tier == ""))
    return ranked[0] if ranked else None


def _deadline(hours: Hours, ticket: Ticket, minutes: int | None, paused: int) -> datetime.datetime | None:
    if minutes is None:
        return None
    return business_add(hours, ticket.created_at, minutes * 60 + paused)


def ticket_sla_refresh(*, ticket: Ticket, now: datetime.datetime, hours: Hours | None = None) -> None:
    """Derive the ticket's deadlines, its next deadline and warning time from its policy, the time its
    clock stood and its state (in memory; the caller saves). Deadlines already met or missed stay."""
    policy = ticket.sla_policy
    if policy is None:
        ticket.first_response_due = ticket.resolution_due = None
        ticket.sla_due_at = ticket.sla_warn_at = None
        return
    hours = hours or policy_hours(policy)
    paused = ticket.sla_paused_seconds
    if ticket.first_response_at is None:
        ticket.first_response_due = _deadline(hours, ticket, policy.first_response_minutes, paused)
    if ticket.resolved_at is None:
        ticket.resolution_due = _deadline(hours, ticket, policy.resolution_minutes, paused)
    due, target = None, None
    if ticket.status not in DONE_STATUSES and ticket.sla_paused_at is None:
        if ticket.first_response_at is None and ticket.first_response_due is not None:
            due, target = ticket.first_response_due, policy.first_response_minutes
        elif ticket.resolution_due is not None:
            due, target = ticket.resolution_due, policy.resolution_minutes
    if due != ticket.sla_due_at:
        # A new deadline: it is warned of and breached on its own.
        ticket.sla_warned_at = ticket.sla_breached_at = None
    ticket.sla_due_at = due
    if due is None:
        ticket.sla_warn_at = None
    else:
        lead = max(target * 60 - policy.warn_before_minutes * 60, 0)
        ticket.sla_warn_at = business_add(hours, ticket.created_at, lead + paused)


def ticket_sla_assign(*, ticket: Ticket, data, now: datetime.datetime, recompute: bool = False) -> None:
    """Choose the ticket's policy (on creation, or when its priority changes) and set its clock."""
    account = data.get("account", ticket.account if ticket.account_id else None)
    priority = data.get("priority", ticket.priority)
    ticket.sla_policy = sla_policy_for(priority=priority, tier=getattr(account, "tier", None))
    ticket_sla_refresh(ticket=ticket, now=now)


def ticket_clock_status_changed(*, ticket: Ticket, previous: str, now: datetime.datetime) -> None:
    """Stop the clock on entering pending-customer or resolved; on leaving them, add the working
    time it stood to the targets. Record whether each target was met when it is reached."""
    hours = policy_hours(ticket.sla_policy)
    was_stopped, stops = previous in STOPPED, ticket.status in STOPPED or ticket.status in DONE_STATUSES
    if stops and ticket.sla_paused_at is None:
        ticket.sla_paused_at = now
    elif not stops and ticket.sla_paused_at is not None:
        ticket.sla_paused_seconds += business_seconds(hours, ticket.sla_paused_at, now)
        ticket.sla_paused_at = None
    if ticket.status in DONE_STATUSES:
        if ticket.resolution_due is not None:
            ticket.resolution_met = ticket.resolved_at <= ticket.resolution_due
    elif was_stopped or previous in DONE_STATUSES:
        ticket.resolution_met = None
    if ticket.sla_policy is not None:
        ticket_sla_refresh(ticket=ticket, now=now, hours=hours)


def ticket_first_response_given(*, ticket: Ticket, now: datetime.datetime) -> None:
    if ticket.first_response_due is not None:
        ticket.first_response_met = now <= ticket.first_response_due
    if ticket.sla_policy is not None:
        ticket_sla_refresh(ticket=ticket, now=now)


# --- state and time left -------------------------------------------------------------------------------


@dataclass(frozen=True)
class SlaStatus:
    state: str
    due: datetime.datetime | None  # the next deadline (None when the clock does not run)
    seconds_left: int | None  # business seconds to it; negative once breached


def ticket_sla_status(ticket: Ticket, *, now: datetime.datetime | None = None, hours: Hours | None = None):
    """The ticket's SLA state (on track, at risk, breached, paused, met, none) and business time left."""
    now = now or timezone.now()
    if ticket.sla_policy_id is None:
        return SlaStatus(SlaState.NONE, None, None)
    if ticket.status in DONE_STATUSES:
        missed = ticket.resolution_met is False or ticket.first_response_met is False
        return SlaStatus(SlaState.BREACHED if missed else SlaState.MET, None, None)
    hours = hours or policy_hours(ticket.sla_policy)
    if ticket.sla_paused_at is not None or ticket.sla_due_at is None:
        return SlaStatus(SlaState.PAUSED, None, None)
    if now >= ticket.sla_due_at:
        return SlaStatus(
            SlaState.BREACHED, ticket.sla_due_at, -business_seconds(hours, ticket.sla_due_at, now)
        )
    left = business_seconds(hours, now, ticket.sla_due_at)
    state = SlaState.AT_RISK if ticket.sla_warn_at and now >= ticket.sla_warn_at else SlaState.ON_TRACK
    return SlaStatus(state, ticket.sla_due_at, left)


def format_seconds(seconds: int | None) -> str:
    if seconds is None:
        return "—"
    sign, seconds = ("-" if seconds < 0 else ""), abs(seconds)
    hours, minutes = divmod(seconds // 60, 60)
    return f"{sign}{hours}h {minutes:02d}m"


# --- the scan (celery beat: activities.tasks.ticket_sla_scan) ------------------------------------------


def _ticket_url(ticket: Ticket) -> str:
    return reverse("admin:activities_ticket_change", args=[ticket.pk])


def _queue_managers(tickets: list[Ticket]) -> dict[int, list]:
    """Who answers for each ticket's breach (its id → managers): the queue's manager; else the managers
    of the assignee's teams. One query for the tickets without a queue manager, whatever their number."""
    from crm.models import SalesTeam

    managers: dict[int, list] = {}
    assignees = {t.assignee_id for t in tickets if not (t.team_id and t.team.manager_id) and t.assignee_id}
    of_assignee: dict[int, list] = {}
    if assignees:
        memberships = SalesTeam.members.through.objects.filter(
            user__in=assignees, salesteam__is_active=True, salesteam__manager__isnull=False
        ).select_related("salesteam__manager")
        for membership in memberships:
            of_assignee.setdefault(membership.user_id, []).append(membership.salesteam.manager)
    for ticket in tickets:
        if ticket.team_id and ticket.team.manager_id:
            managers[ticket.pk] = [ticket.team.manager]
        else:
            managers[ticket.pk] = of_assignee.get(ticket.assignee_id, [])
    return managers


def _claim(queryset, field_name: str, now, batch: int) -> list[int]:
    """Claim up to ``batch`` rows in one UPDATE. On PostgreSQL the rows are locked first and rows
    another run holds are skipped; SQLite's transactions take the write lock when they begin, so no
    other run reads them between this SELECT and the UPDATE. Either way each is told once."""
    ids = list(queryset.select_for_update(skip_locked=True).values_list("pk", flat=True)[:batch])
    if ids:
        Ticket.objects.filter(pk__in=ids).update(**{field_name: now})
    return ids


def ticket_sla_scan(*, now: datetime.datetime | None = None, batch: int = 500) -> dict[str, int]:
    """Warn the assignees of tickets whose warning time came, tell the queue managers of the tickets
    whose deadline passed; each once per deadline. Returns how many of each this run told."""
    now = now or timezone.now()
    told = {"warned": 0, "breached": 0}
    running = Ticket.objects.exclude(status__in=DONE_STATUSES).filter(sla_paused_at__isnull=True)
    while True:
        with transaction.atomic():
            claimed = _claim(
                running.filter(sla_due_at__lte=now, sla_breached_at__isnull=True).order_by("sla_due_at"),
                "sla_breached_at",
                now,
                batch,
            )
            breached = list(Ticket.objects.filter(pk__in=claimed).select_related("team__manager", "assignee"))
            managers = _queue_managers(breached)
            notify_many(
                kind=NotificationKind.SLA_BREACHED,
                notices=[
                    {
                        "recipient": manager,
                        "event_id": f"ticket:{ticket.pk}:sla-breach:{ticket.sla_due_at.isoformat()}",
                        "title": f"SLA breached: {ticket.number} {ticket.subject}",
                        "body": f"Due {timezone.localtime(ticket.sla_due_at):%Y-%m-%d %H:%M}; "
                        f"assignee: {ticket.assignee or 'nobody'}.",
                        "url": _ticket_url(ticket),
                        "record_type": "ticket",
                        "record_id": ticket.pk,
                    }
                    for ticket in breached
                    for manager in managers[ticket.pk]
                ],
            )
            told["breached"] += len(claimed)
        if len(claimed) < batch:
            break
    while True:
        with transaction.atomic():
            claimed = _claim(
                running.filter(sla_warn_at__lte=now, sla_warned_at__isnull=True, sla_due_at__gt=now).order_by(
                    "sla_warn_at"
                ),
                "sla_warned_at",
                now,
                batch,
            )
            warned = Ticket.objects.filter(pk__in=claimed, assignee__isnull=False).select_related("assignee")
            notify_many(
                kind=NotificationKind.SLA_WARNING,
                notices=[
                    {
                        "recipient": ticket.assignee,
                        "event_id": f"ticket:{ticket.pk}:sla-warn:{ticket.sla_due_at.isoformat()}",
                        "title": f"SLA at risk: {ticket.number} {ticket.subject}",
                        "body": f"Due {timezone.localtime(ticket.sla_due_at):%Y-%m-%d %H:%M}.",
                        "url": _ticket_url(ticket),
                        "record_type": "ticket",
                        "record_id": ticket.pk,
                    }
                    for ticket in warned
                ],
            )
            told["warned"] += len(claimed)
        if len(claimed) < batch:
            break
    return told
