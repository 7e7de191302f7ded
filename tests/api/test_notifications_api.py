"""/notifications/ and /notification-preferences/: my own only, mark read, read all, channels, time zone."""

import pytest

from crm.models import Notification, NotificationPreference, UserProfile
from tests.api.conftest import url

pytestmark = pytest.mark.django_db


def make(user, count, start=0):
    return [
        Notification.objects.create(
            recipient=user, kind="assigned", event_id=f"e{start + n}", title=f"Note {start + n}"
        )
        for n in range(count)
    ]


def test_the_list_shows_only_my_in_app_notifications_newest_first(api_as, owner, teammate):
    first, second = make(owner, 2)
    make(teammate, 1, start=10)
    Notification.objects.create(
        recipient=owner, kind="digest", event_id="d", title="Email only", in_app=False
    )

    response = api_as("owner").get(url("notifications/"))

    assert response.status_code == 200
    rows = response.json()["results"]
    assert [row["id"] for row in rows] == [second.pk, first.pk]
    assert rows[0] == {
        "id": second.pk,
        "kind": "assigned",
        "title": "Note 1",
        "body": "",
        "url": "",
        "record_type": "",
        "record_id": None,
        "event_id": "e1",
        "is_read": False,
        "read_at": None,
        "emailed_at": None,
        "created_at": rows[0]["created_at"],
    }


def test_mark_one_read_and_someone_elses_is_404(api_as, owner, teammate):
    (mine,) = make(owner, 1)
    (theirs,) = make(teammate, 1, start=5)
    client = api_as("owner")

    response = client.post(url(f"notifications/{mine.pk}/read/"))
    assert response.status_code == 200 and response.json()["is_read"] is True
    assert client.post(url(f"notifications/{theirs.pk}/read/")).status_code == 404
    assert client.get(url(f"notifications/{theirs.pk}/")).status_code == 404

    mine.refresh_from_db()
    theirs.refresh_from_db()
    assert mine.read_at is not None and theirs.read_at is None
    assert [r["id"] for r in client.get(url("notifications/?unread=true")).json()["results"]] == []


def test_mark_all_read(api_as, owner, teammate):
    make(owner, 3)
    make(teammate, 2, start=5)

    response = api_as("owner").post(url("notifications/read-all/"))

    assert response.json() == {"marked": 3}
    assert Notification.objects.filter(recipient=owner, read_at__isnull=True).count() == 0
    assert Notification.objects.filter(recipient=teammate, read_at__isnull=True).count() == 2


def test_anonymous_is_refused_as_on_every_resource(anon):
    status = anon.get(url("notifications/")).status_code
    assert status == anon.get(url("leads/")).status_code == 401


@pytest.mark.parametrize("params", ["", "?cursor="])
def test_the_list_costs_a_fixed_number_of_queries(api_as, owner, django_assert_max_num_queries, params):
    client = api_as("owner")
    make(owner, 2)
    client.get(url(f"notifications/{params}"))  # warm-up
    with django_assert_max_num_queries(4) as small:
        assert client.get(url(f"notifications/{params}")).status_code == 200
    make(owner, 20, start=10)
    with django_assert_max_num_queries(4) as large:
        response = client.get(url(f"notifications/{params}"))
    assert len(response.json()["results"]) == 22
    assert len(large.captured_queries) == len(small.captured_queries)


def test_paging_by_cursor(api_as, owner):
    make(owner, 5)
    client = api_as("owner")

    first = client.get(url("notifications/?cursor=&page_size=2")).json()
    second = client.get(first["next"]).json()

    assert [r["title"] for r in first["results"] + second["results"]] == [
        "Note 4",
        "Note 3",
        "Note 2",
        "Note 1",
    ]


def test_preferences_list_defaults_and_update(api_as, owner):
    client = api_as("owner")

    listed = client.get(url("notification-preferences/")).json()
    assert {row["kind"]: row["channel"] for row in listed} == {
        "sla_warning": "both",
        "sla_breached": "both",
        "assigned": "both",
        "stage_changed": "in_app",
        "team_deal_closed": "in_app",
        "reminder": "both",
        "digest": "email",
        "rotting": "in_app",
        "webhook_disabled": "both",
        "automation": "in_app",
        "mention": "both",
    }

    response = client.put(url("notification-preferences/digest/"), {"channel": "none"}, format="json")
    assert response.status_code == 200
    assert response.json() == {"kind": "digest", "label": response.json()["label"], "channel": "none"}
    assert NotificationPreference.objects.get(user=owner, kind="digest").channel == "none"

    bad = client.put(url("notification-preferences/digest/"), {"channel": "pigeon"}, format="json")
    assert bad.status_code == 400 and "channel" in bad.json()
    assert (
        client.put(url("notification-preferences/nope/"), {"channel": "none"}, format="json").status_code
        == 404
    )


def test_time_zone(api_as, owner):
    client = api_as("owner")
    assert client.get(url("notification-preferences/time-zone/")).json() == {"time_zone": ""}

    response = client.put(
        url("notification-preferences/time-zone/"), {"time_zone": "Asia/Tokyo"}, format="json"
    )
    assert response.status_code == 200 and response.json() == {"time_zone": "Asia/Tokyo"}
    assert UserProfile.objects.get(user=owner).time_zone == "Asia/Tokyo"

    bad = client.put(url("notification-preferences/time-zone/"), {"time_zone": "Mars/Base"}, format="json")
    assert bad.status_code == 400 and "time_zone" in bad.json()
    missing = client.put(url("notification-preferences/time-zone/"), {}, format="json")
    assert missing.status_code == 400 and "time_zone" in missing.json()
    assert UserProfile.objects.get(user=owner).time_zone == "Asia/Tokyo"
