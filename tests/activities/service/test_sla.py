"""Issue 20 item 2: SLA targets in business hours, checked by hand.

Each expected instant below was worked out on paper from the calendar; the comments show the sums.
"""

import datetime
from zoneinfo import ZoneInfo

import pytest
import time_machine
from django.core.exceptions import ValidationError

from activities.models import SlaPolicy, Ticket, TicketStatus, WorkingCalendar
from activities.service import services, sla
from crm.actors import SYSTEM
from crm.models import Notification, NotificationKind
from tests.factories import AccountFactory

PARIS, NEW_YORK = ZoneInfo("Europe/Paris"), ZoneInfo("America/New_York")
UTC = datetime.UTC
WEEKDAYS = range(5)


def at(tz, *parts) -> datetime.datetime:
    return datetime.datetime(*parts, tzinfo=tz)


def hours_of(tz, spans_by_day, holidays=()) -> sla.Hours:
    return sla.Hours(tz=tz, spans=spans_by_day, holidays=frozenset(holidays))


def office(tz, *spans, holidays=()) -> sla.Hours:
    """Monday to Friday, the given (start, end) spans as "HH:MM" strings."""
    parsed = tuple((datetime.time.fromisoformat(s), datetime.time.fromisoformat(e)) for s, e in spans)
    return hours_of(tz, dict.fromkeys(WEEKDAYS, parsed), holidays)


# --- the arithmetic, by hand ---------------------------------------------------------------------------


def test_a_target_crosses_the_weekend():
    # Paris, Mon–Fri 09:00–17:00. Friday 27 Nov 2026 16:00 + 2 h: 1 h on Friday (16–17), the weekend
    # counts nothing, 1 h on Monday (09–10) → Monday 30 Nov 10:00 Paris (CET, UTC+1) = 09:00 UTC.
    hours = office(PARIS, ("09:00", "17:00"))
    start = at(PARIS, 2026, 11, 27, 16, 0)
    due = sla.business_add(hours, start, 2 * 3600)
    assert due == at(UTC, 2026, 11, 30, 9, 0)
    assert sla.business_seconds(hours, start, due) == 2 * 3600
    # Saturday noon to Sunday noon: no working time at all.
    assert sla.business_seconds(hours, at(PARIS, 2026, 11, 28, 12), at(PARIS, 2026, 11, 29, 12)) == 0


def test_a_holiday_counts_nothing():
    # The same Friday, with Monday 30 Nov a holiday: the second hour falls on Tuesday 09–10 Paris.
    hours = office(PARIS, ("09:00", "17:00"), holidays=[datetime.date(2026, 11, 30)])
    due = sla.business_add(hours, at(PARIS, 2026, 11, 27, 16, 0), 2 * 3600)
    assert due == at(UTC, 2026, 12, 1, 9, 0)


def test_a_lunch_break_splits_the_day():
    # 09–12 and 13–17. Wednesday 11:30 + 1 h: 30 min before lunch, 30 min after → 13:30 Paris = 12:30 UTC.
    hours = office(PARIS, ("09:00", "12:00"), ("13:00", "17:00"))
    assert sla.business_add(hours, at(PARIS, 2026, 12, 2, 11, 30), 3600) == at(UTC, 2026, 12, 2, 12, 30)
    # A start outside working time begins at the next span: 12:15 + 15 min → 13:15.
    assert sla.business_add(hours, at(PARIS, 2026, 12, 2, 12, 15), 900) == at(UTC, 2026, 12, 2, 12, 15)


def test_a_daylight_saving_change_over_the_weekend():
    # New York, Mon–Fri 09:00–17:00. Friday 6 Mar 2026 16:00 EST (UTC−5, 21:00 UTC) + 2 h: 1 h on
    # Friday, the clocks go forward on Sunday 8 March, 1 h on Monday → 10:00 EDT (UTC−4) = 14:00 UTC.
    # (Adding in UTC alone would say 15:00 UTC, 11:00 local.)
    hours = office(NEW_YORK, ("09:00", "17:00"))
    start = at(NEW_YORK, 2026, 3, 6, 16, 0)
    assert start.astimezone(UTC) == at(UTC, 2026, 3, 6, 21, 0)
    assert sla.business_add(hours, start, 2 * 3600) == at(UTC, 2026, 3, 9, 14, 0)


def test_a_span_across_the_hour_the_clocks_repeat_counts_the_real_hours():
    # Paris, Sunday 25 Oct 2026 00:00–06:00: the clocks go back at 03:00 CEST to 02:00 CET, so the
    # span lasts 7 real hours (22:00 UTC on the 24th to 05:00 UTC on the 25th).
    hours = hours_of(PARIS, {6: ((datetime.time(0), datetime.time(6)),)})
    seconds = sla.business_seconds(hours, at(UTC, 2026, 10, 24, 12), at(UTC, 2026, 10, 26, 0))
    assert seconds == 7 * 3600
    # 6 h 30 min into it: 22:00 UTC + 6:30 = 04:30 UTC = 05:30 CET.
    assert sla.business_add(hours, at(UTC, 2026, 10, 24, 12), int(6.5 * 3600)) == at(UTC, 2026, 10, 25, 4, 30)


def test_a_span_until_midnight():
    hours = hours_of(UTC, {0: ((datetime.time(22), datetime.time(0)),)})
    # Monday 30 Nov 22:00–24:00 UTC: 1 h 30 in → 23:30.
    assert sla.business_add(hours, at(UTC, 2026, 11, 30, 21), 5400) == at(UTC, 2026, 11, 30, 23, 30)


# --- tickets: policy, deadlines, pause, state -------------------------------------------------------------


@pytest.fixture
def paris_office(db):
    calendar = services.working_calendar_create(
        user=SYSTEM,
        data={
            "name": "Paris office",
            "time_zone": "Europe/Paris",
            "hours": [
                {"weekday": day, "start": datetime.time(9), "end": datetime.time(17)} for day in WEEKDAYS
            ],
            "holidays": [{"date": datetime.date(2026, 12, 25), "name": "Christmas"}],
        },
    )
    return calendar


@pytest.fixture
def policy(paris_office):
    return services.sla_policy_create(
        user=SYSTEM,
        data={
            "name": "Standard",
            "calendar": paris_office,
            "first_response_minutes": 120,
            "resolution_minutes": 8 * 60,
            "warn_before_minutes": 60,
        },
    )


def test_the_most_specific_policy_applies(policy, paris_office):
    urgent = services.sla_policy_create(
        user=SYSTEM, data={"name": "Urgent", "priority": "urgent", "resolution_minutes": 240}
    )
    enterprise = services.sla_policy_create(
        user=SYSTEM, data={"name": "Enterprise", "account_tier": "enterprise", "resolution_minutes": 480}
    )
    both = services.sla_policy_create(
        user=SYSTEM,
        data={
            "name": "Urgent enterprise",
            "priority": "urgent",
            "account_tier": "enterprise",
            "resolution_minutes": 60,
        },
    )
    big, small = AccountFactory(tier="enterprise"), AccountFactory(tier="standard")
    cases = [
        ("urgent", big, both),
        ("urgent", small, urgent),
        ("low", big, enterprise),
        ("low", small, policy),
    ]
    for priority, account, expected in cases:
        ticket = services.ticket_create(
            user=SYSTEM, data={"subject": "x", "priority": priority, "account": account}
        )
        assert ticket.sla_policy == expected, (priority, account.tier)


def test_deadlines_and_a_pause_while_pending_customer(policy):
    # Created Monday 30 Nov 09:00 Paris. Resolution 8 h → Monday 17:00 without a pause.
    with time_machine.travel(at(PARIS, 2026, 11, 30, 9, 0), tick=False):
        ticket = services.ticket_create(user=SYSTEM, data={"subject": "Slow invoices"})
    assert ticket.first_response_due == at(UTC, 2026, 11, 30, 10, 0)  # 11:00 Paris
    assert ticket.resolution_due == at(UTC, 2026, 11, 30, 16, 0)  # 17:00 Paris
    assert ticket.sla_due_at == ticket.first_response_due

    with time_machine.travel(at(PARIS, 2026, 11, 30, 10, 0), tick=False):
        services.ticket_message_create(ticket=ticket, user=SYSTEM, body="Which invoices?")
    with time_machine.travel(at(PARIS, 2026, 11, 30, 11, 0), tick=False):
        ticket = services.ticket_set_status(ticket=ticket, user=SYSTEM, status=TicketStatus.PENDING_CUSTOMER)
    assert ticket.first_response_met is True and ticket.sla_due_at is None
    assert sla.ticket_sla_status(ticket).state == "paused"
    # The customer answers on Tuesday 10:00: the clock stood Monday 11–17 and Tuesday 09–10, 7 h.
    with time_machine.travel(at(PARIS, 2026, 12, 1, 10, 0), tick=False):
        services.ticket_message_create(
            ticket=ticket, user=SYSTEM, body="These ones", from_customer=True, sender_email="c@example.com"
        )
    ticket.refresh_from_db()
    assert ticket.status == TicketStatus.OPEN and ticket.sla_paused_seconds == 7 * 3600
    # 8 h + 7 h from Monday 09:00 = Monday 09–17 (8 h) + Tuesday 09–16 (7 h) → Tuesday 16:00 Paris.
    assert ticket.resolution_due == at(UTC, 2026, 12, 1, 15, 0) == ticket.sla_due_at

    now = at(PARIS, 2026, 12, 1, 14, 30)  # 1 h 30 of working time left
    assert sla.ticket_sla_status(ticket, now=now) == sla.SlaStatus("on_track", ticket.sla_due_at, 5400)
    now = at(PARIS, 2026, 12, 1, 15, 30)  # 30 min left, within the hour's warning
    assert sla.ticket_sla_status(ticket, now=now).state == "at_risk"
    now = at(PARIS, 2026, 12, 2, 9, 15)  # Tuesday 16–17 and Wednesday 09:00–09:15 past the deadline
    assert sla.ticket_sla_status(ticket, now=now) == sla.SlaStatus("breached", ticket.sla_due_at, -75 * 60)

    with time_machine.travel(at(PARIS, 2026, 12, 1, 15, 45), tick=False):
        ticket = services.ticket_set_status(ticket=ticket, user=SYSTEM, status=TicketStatus.RESOLVED)
    assert ticket.resolution_met is True and sla.ticket_sla_status(ticket).state == "met"


def test_raising_the_priority_chooses_the_urgent_policy(policy):
    services.sla_policy_create(
        user=SYSTEM, data={"name": "Urgent", "priority": "urgent", "resolution_minutes": 60}
    )
    with time_machine.travel(at(PARIS, 2026, 11, 30, 9, 0), tick=False):
        ticket = services.ticket_create(user=SYSTEM, data={"subject": "x"})
        ticket = services.ticket_update(ticket=ticket, user=SYSTEM, data={"priority": "urgent"})
    assert ticket.sla_policy.name == "Urgent" and ticket.resolution_due == at(UTC, 2026, 11, 30, 9, 0)


# --- calendars: bad input --------------------------------------------------------------------------------


def test_overlapping_hours_are_refused_and_nothing_is_written(paris_office):
    spans = [
        {"weekday": 0, "start": datetime.time(9), "end": datetime.time(12)},
        {"weekday": 0, "start": datetime.time(11), "end": datetime.time(14)},
    ]
    with pytest.raises(ValidationError) as refused:
        services.working_calendar_update(user=SYSTEM, calendar=paris_office, data={"hours": spans})
    assert "overlaps" in refused.value.message_dict["hours"][0]
    assert paris_office.hours.count() == 5
    with pytest.raises(ValidationError):
        services.working_hours_save(
            user=SYSTEM,
            hours=None,
            data={
                "calendar": paris_office,
                "weekday": 0,
                "start": datetime.time(16),
                "end": datetime.time(18),
            },
        )
    with pytest.raises(ValidationError):
        services.working_hours_save(
            user=SYSTEM,
            hours=None,
            data={
                "calendar": paris_office,
                "weekday": 5,
                "start": datetime.time(18),
                "end": datetime.time(9),
            },
        )


@pytest.mark.django_db
def test_api_calendar_with_overlapping_hours_is_a_400_and_a_rep_may_not_configure(api_as, people):
    body = {
        "name": "Lyon",
        "time_zone": "Europe/Paris",
        "hours": [
            {"weekday": 1, "start": "09:00", "end": "12:00"},
            {"weekday": 1, "start": "11:59", "end": "17:00"},
        ],
    }
    response = api_as("crm_admin").post("/api/v1/crm/working-calendars/", body, format="json")
    assert response.status_code == 400 and "hours" in response.json()
    assert not WorkingCalendar.objects.exists()
    assert api_as("crm_admin").post(
        "/api/v1/crm/working-calendars/", {**body, "time_zone": "Mars/Olympus"}, format="json"
    ).json().keys() >= {"time_zone"}
    body["hours"][1]["start"] = "13:00"
    response = api_as("crm_admin").post("/api/v1/crm/working-calendars/", body, format="json")
    assert response.status_code == 201 and len(response.json()["hours"]) == 2
    assert (
        api_as("owner")
        .post("/api/v1/crm/working-calendars/", {**body, "name": "x"}, format="json")
        .status_code
        == 403
    )
    response = api_as("crm_admin").post(
        "/api/v1/crm/sla-policies/",
        {"name": "Std", "calendar_id": response.json()["id"], "resolution_minutes": 480},
        format="json",
    )
    assert response.status_code == 201
    assert SlaPolicy.objects.get().calendar.name == "Lyon"


# --- the scan ---------------------------------------------------------------------------------------


def test_the_scan_warns_the_assignee_then_tells_the_queue_manager_once_each(policy, personas):
    owner, west = personas.users["owner"], personas.teams["West"]
    with time_machine.travel(at(PARIS, 2026, 11, 30, 9, 0), tick=False):
        ticket = services.ticket_create(
            user=SYSTEM, data={"subject": "Down", "assignee": owner, "team": west}
        )
    # First response due 11:00 Paris, warned from 10:00.
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 9, 59)) == {"warned": 0, "breached": 0}
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 10, 1)) == {"warned": 1, "breached": 0}
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 10, 30)) == {"warned": 0, "breached": 0}
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 11, 1)) == {"warned": 0, "breached": 1}
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 11, 30)) == {"warned": 0, "breached": 0}
    warning = Notification.objects.get(kind=NotificationKind.SLA_WARNING)
    breach = Notification.objects.get(kind=NotificationKind.SLA_BREACHED)
    assert warning.recipient == owner and ticket.number in warning.title
    assert breach.recipient == west.manager and breach.record_id == ticket.pk
    # The first response comes late; the resolution deadline (17:00) is a new one, warned of again.
    with time_machine.travel(at(PARIS, 2026, 11, 30, 11, 30), tick=False):
        services.ticket_message_create(ticket=ticket, user=owner, body="On it")
    ticket.refresh_from_db()
    assert ticket.first_response_met is False and ticket.sla_due_at == at(UTC, 2026, 11, 30, 16, 0)
    assert sla.ticket_sla_scan(now=at(PARIS, 2026, 11, 30, 16, 5)) == {"warned": 1, "breached": 0}
    assert Ticket.objects.filter(sla_warned_at__isnull=False).count() == 1
