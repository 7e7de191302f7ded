"""The admin's bell, my notifications list (mine only, mark read, mark all read) and my preferences page."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from crm.models import DEFAULT_CHANNELS, Notification, NotificationPreference, UserProfile

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/crm/notification/"


def make(user, count, start=0):
    return [
        Notification.objects.create(
            recipient=user,
            kind="assigned",
            event_id=f"e{start + n}",
            title=f"Note {start + n}",
            url="/admin/",
        )
        for n in range(count)
    ]


def test_the_bell_shows_my_unread_count_on_every_page(admin_as, owner, teammate):
    make(owner, 3)
    make(teammate, 5, start=10)
    Notification.objects.filter(recipient=owner, event_id="e0").update(read_at="2026-01-01T00:00:00Z")

    page = admin_as("owner").get(reverse("admin:index"))

    assert page.status_code == 200
    assert '<span class="crm-bell-count">2</span>' in page.content.decode()


def test_the_bell_costs_one_query_though_the_header_names_its_count_twice(admin_as, owner):
    make(owner, 1)
    client = admin_as("owner")
    client.get(reverse("admin:index"))

    with CaptureQueriesContext(connection) as queries:
        page = client.get(reverse("admin:index"))

    assert 'aria-label="Notifications, 1 unread"' in page.content.decode()
    assert len([q for q in queries.captured_queries if '"crm_notification"' in q["sql"]]) == 1


def test_the_list_shows_only_mine_at_a_fixed_query_count(
    admin_as, owner, teammate, django_assert_max_num_queries
):
    make(owner, 2)
    make(teammate, 3, start=10)
    client = admin_as("owner")
    client.get(CHANGELIST)  # warm-up

    with django_assert_max_num_queries(20) as small:
        response = client.get(CHANGELIST)
    assert [n.title for n in response.context["cl"].result_list] == ["Note 1", "Note 0"]
    make(owner, 15, start=20)
    with django_assert_max_num_queries(20) as large:
        response = client.get(CHANGELIST)
    assert len(response.context["cl"].result_list) == 17
    assert len(large.captured_queries) == len(small.captured_queries)


def test_someone_elses_notification_is_not_found(admin_as, teammate):
    (theirs,) = make(teammate, 1)
    response = admin_as("owner").get(reverse("admin:crm_notification_change", args=[theirs.pk]))
    assert response.status_code == 302  # the admin's "does not exist" redirect to the index


def test_mark_read_action_and_mark_all_read(admin_as, owner, teammate):
    first, *_ = make(owner, 3)
    (theirs,) = make(teammate, 1, start=10)
    client = admin_as("owner")

    client.post(CHANGELIST, {"action": "mark_read", "_selected_action": [first.pk, theirs.pk]})
    assert list(Notification.objects.filter(read_at__isnull=False).values_list("pk", flat=True)) == [first.pk]

    response = client.post(reverse("admin:crm_notification_read_all"))
    assert response.status_code == 302
    assert Notification.objects.filter(recipient=owner, read_at__isnull=True).count() == 0
    assert Notification.objects.get(pk=theirs.pk).read_at is None
    assert client.get(reverse("admin:crm_notification_read_all")).status_code == 403


def test_the_preferences_page_saves_channels_and_time_zone(admin_as, owner):
    client = admin_as("owner")
    page = reverse("admin:crm_notification_preferences")
    assert client.get(page).status_code == 200
    # Every kind at its default (kinds added later included), but two.
    form = {
        **{str(kind): str(channel) for kind, channel in DEFAULT_CHANNELS.items()},
        "assigned": "email",
        "stage_changed": "none",
        "time_zone": "Europe/Paris",
    }

    assert client.post(page, form).status_code == 302

    chosen = dict(NotificationPreference.objects.filter(user=owner).values_list("kind", "channel"))
    assert chosen == {"assigned": "email", "stage_changed": "none"}  # only what differs from the defaults
    assert UserProfile.objects.get(user=owner).time_zone == "Europe/Paris"

    bad = client.post(page, {**form, "time_zone": "Mars/Base"})
    assert bad.status_code == 200 and "is not a time zone" in bad.content.decode()
    assert UserProfile.objects.get(user=owner).time_zone == "Europe/Paris"
