"""Activity reads for the back office: the agenda, the calendar and each record's next activity."""

import datetime

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from activities.selectors import activity_agenda, activity_calendar, activity_next_by_record
from crm.models import Lead
from tests.factories import ActivityFactory, LeadFactory, SalesTeam, UserFactory


@pytest.mark.django_db
def test_next_activity_is_the_earliest_open_one_undated_last(stages):
    user = UserFactory()
    now = timezone.now()
    busy, idle, undated = (LeadFactory(stage=stages["New"]) for _ in range(3))
    ActivityFactory(lead=busy, subject="undated")
    ActivityFactory(lead=busy, subject="later", due_date=now + datetime.timedelta(days=3))
    ActivityFactory(lead=busy, subject="sooner", due_date=now + datetime.timedelta(days=1))
    ActivityFactory(lead=busy, subject="cancelled", status="cancelled", due_date=now)
    ActivityFactory(lead=undated, subject="someday")

    with CaptureQueriesContext(connection) as queries:
        result = activity_next_by_record(user=user, model=Lead, ids=[busy.pk, idle.pk, undated.pk])

    # The activities, and the reader's CRM Admin membership (read once per user object).
    assert len(queries) == 2
    with CaptureQueriesContext(connection) as again:
        activity_next_by_record(user=user, model=Lead, ids=[busy.pk])
    assert len(again) == 1
    assert {pk: activity.subject for pk, activity in result.items()} == {
        busy.pk: "sooner",
        undated.pk: "someday",
    }
    assert result[busy.pk].get_activity_type_display() == "Call" and not result[busy.pk].is_overdue


@pytest.mark.django_db
def test_agenda_and_calendar_windows(stages):
    me, other = UserFactory(), UserFactory()
    lead = LeadFactory(stage=stages["New"])
    now = timezone.now()
    ActivityFactory(lead=lead, owner=me, subject="late", due_date=now - datetime.timedelta(hours=1))
    ActivityFactory(lead=lead, owner=me, subject="soon", due_date=now + datetime.timedelta(days=6))
    ActivityFactory(lead=lead, owner=me, subject="far", due_date=now + datetime.timedelta(days=8))
    ActivityFactory(lead=lead, owner=other, subject="theirs", due_date=now + datetime.timedelta(days=1))

    agenda = activity_agenda(user=me, owner=me, now=now)
    assert ([a.subject for a in agenda.overdue], [a.subject for a in agenda.upcoming]) == (["late"], ["soon"])
    # Another rep's activities stay off the calendar; their manager sees them.
    SalesTeam.objects.create(name="Mine", manager=me).members.add(other)

    def listed(days):
        return [a.subject for day in sorted(days) for a in days[day].activities]

    window = activity_calendar(
        user=me, start=now - datetime.timedelta(days=1), end=now + datetime.timedelta(days=7)
    )
    assert listed(window) == ["late", "theirs", "soon"]
    mine = activity_calendar(user=me, start=now, end=now + datetime.timedelta(days=9), owner=me)
    assert listed(mine) == ["soon", "far"]


@pytest.mark.django_db
def test_calendar_lists_a_few_per_day_but_counts_them_all(stages):
    user = UserFactory()
    lead = LeadFactory(stage=stages["New"])
    day = timezone.make_aware(datetime.datetime(2026, 3, 2, 8))
    for hour in range(6):
        ActivityFactory(lead=lead, subject=f"at {8 + hour}", due_date=day + datetime.timedelta(hours=hour))
    ActivityFactory(lead=lead, subject="next day", due_date=day + datetime.timedelta(days=1))

    with CaptureQueriesContext(connection) as queries:
        days = activity_calendar(user=user, start=day, end=day + datetime.timedelta(days=7), per_day=4)

    # The counts per day, the listed activities, and the recurring ones whose occurrences fall in the
    # period: three queries whatever the number of activities, and the reader's CRM Admin membership
    # (read once per user object).
    assert len(queries) == 4
    first, second = days[datetime.date(2026, 3, 2)], days[datetime.date(2026, 3, 3)]
    assert ([a.subject for a in first.activities], first.count) == (["at 8", "at 9", "at 10", "at 11"], 6)
    assert ([a.subject for a in second.activities], second.count) == (["next day"], 1)


@pytest.mark.django_db
@pytest.mark.skipif(connection.vendor != "postgresql", reason="the partial indexes' plans are PostgreSQL's")
def test_the_agenda_reads_the_open_activities_by_due_date_not_every_closed_one(stages):
    """An owner's overdue activities come from the partial index of open activities by owner and due
    date (act_owner_open_due), everyone's from one of the open activities' (act_open_due at volume):
    read by the due-date index, the oldest closed activities of every owner were read and thrown away,
    more of them as the table grew."""
    from activities.models import Activity

    me = UserFactory()
    lead = LeadFactory(stage=stages["New"])
    now = timezone.now()
    closed = [
        Activity(
            lead=lead,
            owner=me if index % 3 else None,
            subject=f"Done {index}",
            activity_type="call",
            status="completed",
            due_date=now - datetime.timedelta(days=400 - index % 300),
            completed_at=now - datetime.timedelta(days=400 - index % 300),
        )
        for index in range(3000)
    ]
    Activity.objects.bulk_create(closed)
    ActivityFactory(lead=lead, owner=me, subject="Late", due_date=now - datetime.timedelta(days=2))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE activities_activity")
    superuser = UserFactory(is_superuser=True, is_staff=True)
    for owner, everyone, index in ((me, False, "act_owner_open_due"), (superuser, True, "open_due")):
        with CaptureQueriesContext(connection) as queries:
            agenda = activity_agenda(user=superuser, owner=owner, everyone=everyone)
        assert [activity.subject for activity in agenda.overdue] == ["Late"]
        overdue_sql = queries.captured_queries[0]["sql"]
        with connection.cursor() as cursor:
            cursor.execute(f"EXPLAIN {overdue_sql}")
            plan = "\n".join(row[0] for row in cursor.fetchall())
        assert index in plan, plan
