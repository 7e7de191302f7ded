"""The personal calendar feed: a secret URL, regenerated on demand, serving exactly the user's
activities (RRULE for recurring ones) as RFC 5545, read back here with the icalendar parser."""

import datetime

import pytest
from django.urls import reverse
from django.utils import timezone
from icalendar import Calendar

from activities.models import ActivityStatus, ActivityTemplate, CalendarFeed
from activities.selectors import activity_calendar
from tests.factories import ActivityFactory

FEED = "/api/v1/crm/calendar/feed/"


def regenerate(api) -> str:
    response = api.post(f"{FEED}regenerate/")
    assert response.status_code == 200, response.content
    return response.json()["url"]


def path_of(url: str) -> str:
    return url[url.index("/api/") :]


def read_feed(client, url) -> Calendar:
    response = client.get(path_of(url))
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/calendar")
    return Calendar.from_ical(response.content)


@pytest.mark.django_db
def test_the_feed_holds_exactly_my_activities_with_their_recurrence(api_as, people, client):
    owner = people.users["owner"]
    start = timezone.now().replace(microsecond=0) + datetime.timedelta(days=1)
    weekly = ActivityFactory(
        subject="Weekly sync; team, all",
        owner=owner,
        lead=people.records["owner"].lead,
        due_date=start,
        duration_minutes=45,
        recurrence="FREQ=WEEKLY;COUNT=4",
        description="Agenda:\nfirst line",
    )
    ActivityFactory(subject="Undated", owner=owner, lead=people.records["owner"].lead, due_date=None)
    url = regenerate(api_as("owner"))

    calendar = read_feed(client, url)  # no session: the secret is the credential

    events = {str(event["UID"]): event for event in calendar.walk("VEVENT")}
    mine = {f"activity-{people.records['owner'].activity.pk}", f"activity-{weekly.pk}"}
    assert {uid.split("@")[0] for uid in events} == mine
    event = next(e for uid, e in events.items() if uid.startswith(f"activity-{weekly.pk}@"))
    assert str(event["SUMMARY"]) == "Weekly sync; team, all"
    assert str(event["DESCRIPTION"]) == "Agenda:\nfirst line"
    assert event.decoded("DTSTART") == start
    assert event.decoded("DTEND") - event.decoded("DTSTART") == datetime.timedelta(minutes=45)
    assert event["RRULE"] == {"FREQ": ["WEEKLY"], "COUNT": [4]}
    text = client.get(path_of(url)).content.decode()
    for secret in ("teammate call", "outsider_rep call", "west_manager call", "owner lead"):
        assert secret not in text


@pytest.mark.django_db
def test_a_wrong_secret_is_404_and_regenerating_invalidates_the_old_url(api_as, people, client):
    api = api_as("owner")
    old = regenerate(api)
    assert client.get(path_of(old)).status_code == 200
    wrong = old[:-8] + ("A" * 8 if not old.endswith("A" * 8) else "B" * 8)
    assert client.get(path_of(wrong)).status_code == 404
    assert client.get("/api/v1/crm/calendar/feed/short.ics").status_code == 404

    new = regenerate(api)

    assert new != old
    assert client.get(path_of(old)).status_code == 404
    assert client.get(path_of(new)).status_code == 200
    feed = CalendarFeed.objects.get(user=people.users["owner"])
    token = path_of(new).rsplit("/", 1)[1].removesuffix(".ics")
    assert token not in (feed.token_hash, feed.token_prefix)  # stored hashed
    state = api.get(FEED).json()
    assert state["exists"] is True and state["url"] is None


@pytest.mark.django_db
def test_the_feed_of_an_inactive_user_is_404(api_as, people, client):
    url = regenerate(api_as("owner"))
    type(people.users["owner"]).objects.filter(pk=people.users["owner"].pk).update(is_active=False)
    assert client.get(path_of(url)).status_code == 404


@pytest.mark.django_db
def test_the_admin_preferences_page_makes_and_shows_the_url_once(admin_as, people, client):
    admin = admin_as("owner")
    page = admin.get(reverse("admin:crm_notification_preferences"))
    assert b"My calendar feed" in page.content and b"no feed URL yet" in page.content

    response = admin.post(reverse("admin:activities_activity_calendar_feed"), follow=True)

    content = response.content.decode()
    assert "Your new feed URL" in content
    url = content.split('readonly value="')[1].split('"')[0]
    assert CalendarFeed.objects.filter(user=people.users["owner"]).exists()
    again = admin.get(reverse("admin:crm_notification_preferences")).content.decode()
    assert url not in again and "You have a feed URL" in again
    admin.logout()
    assert client.get(path_of(url)).status_code == 200


@pytest.mark.django_db
def test_the_admin_calendar_shows_each_occurrence(admin_as, people):
    owner = people.users["owner"]
    monday = timezone.make_aware(datetime.datetime(2026, 11, 2, 9, 0))
    ActivityFactory(
        subject="Standup",
        owner=owner,
        lead=people.records["owner"].lead,
        due_date=monday,
        recurrence="FREQ=DAILY;COUNT=3",
    )
    days = activity_calendar(
        user=owner,
        start=monday - datetime.timedelta(days=1),
        end=monday + datetime.timedelta(days=7),
        owner=owner,
    )
    standups = {day: [a.subject for a in d.activities if a.subject == "Standup"] for day, d in days.items()}
    assert [day for day, names in sorted(standups.items()) if names] == [
        datetime.date(2026, 11, 2),
        datetime.date(2026, 11, 3),
        datetime.date(2026, 11, 4),
    ]
    page = admin_as("owner").get(
        reverse("admin:activities_activity_calendar"), {"view": "week", "date": "2026-11-02"}
    )
    assert page.content.decode().count("Standup") >= 3


@pytest.mark.django_db
def test_a_bad_rrule_is_a_400(api_as, people):
    response = api_as("owner").post(
        "/api/v1/crm/activities/",
        {
            "subject": "x",
            "activity_type": "call",
            "lead_id": people.records["owner"].lead.pk,
            "recurrence": "EVERY DAY",
        },
    )
    assert response.status_code == 400
    assert "recurrence" in response.json()


@pytest.mark.django_db
def test_a_template_fills_an_activity_and_completing_it_schedules_the_follow_up(api_as, people):
    template = ActivityTemplate.objects.create(
        name="Discovery call",
        activity_type="call",
        script="1. Ask about budget",
        default_duration_minutes=20,
        follow_up_days=3,
        follow_up_type="task",
    )
    api = api_as("owner")
    lead = people.records["owner"].lead
    created = api.post(
        "/api/v1/crm/activities/",
        {
            "subject": "Discovery with Acme",
            "activity_type": "call",
            "lead_id": lead.pk,
            "template_id": template.pk,
        },
    ).json()
    assert created["description"] == "1. Ask about budget" and created["duration_minutes"] == 20

    done = api.patch(f"/api/v1/crm/activities/{created['id']}/", {"status": ActivityStatus.COMPLETED})

    assert done.status_code == 200
    follow_ups = api.get("/api/v1/crm/activities/", {"search": "Follow up"}).json()["results"]
    assert len(follow_ups) == 1
    follow_up = follow_ups[0]
    assert follow_up["activity_type"] == "task" and follow_up["lead_id"] == lead.pk
    completed_at = datetime.datetime.fromisoformat(done.json()["completed_at"])
    due = datetime.datetime.fromisoformat(follow_up["due_date"])
    assert due - completed_at == datetime.timedelta(days=3)
    # Completing it again (reopen, complete) schedules another; an edit while completed does not.
    api.patch(f"/api/v1/crm/activities/{created['id']}/", {"subject": "renamed"})
    assert api.get("/api/v1/crm/activities/", {"search": "Follow up"}).json()["count"] == 1


@pytest.mark.django_db
def test_the_feed_is_rebuilt_after_a_change_and_answers_304_when_unchanged(api_as, people, client):
    api = api_as("owner")
    url = path_of(regenerate(api))
    first = client.get(url)
    assert client.get(url, HTTP_IF_NONE_MATCH=first["ETag"]).status_code == 304

    activity = people.records["owner"].activity
    api.patch(f"/api/v1/crm/activities/{activity.pk}/", {"subject": "Renamed call"})
    second = client.get(url, HTTP_IF_NONE_MATCH=first["ETag"])

    assert second.status_code == 200 and second["ETag"] != first["ETag"]
    assert b"Renamed call" in second.content
    api.delete(f"/api/v1/crm/activities/{activity.pk}/")
    assert f"activity-{activity.pk}@".encode() not in client.get(url).content
