"""What a list page costs besides its rows (issue 24): a CRM Admin's group read once per page, the
row checkbox written directly (the same HTML as Django's widget), and no cache write on a read."""

import pytest
from django.contrib import admin
from django.contrib.admin import ModelAdmin
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.management import call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from rest_framework.test import APIClient

from crm.models import Lead
from crm.selectors import CRM_ADMIN_GROUP, user_sees_everything
from tests.factories import UserFactory

LEADS = reverse("admin:crm_lead_changelist")
# Whether the user is a CRM Admin: their membership of the group, read with their permissions and team
# (crm.selectors.visibility.user_access_read).
GROUP_CHECK = f'"auth_group"."name" = \'{CRM_ADMIN_GROUP}\''


def group_checks(captured) -> list[str]:
    return [query["sql"] for query in captured.captured_queries if GROUP_CHECK in query["sql"]]


@pytest.mark.django_db
def test_an_admin_page_asks_a_crm_admins_group_once(people, admin_as):
    admin = admin_as("crm_admin")
    admin.get(LEADS)  # the first page of a session reads what every page reads (permissions)
    with CaptureQueriesContext(connection) as captured:
        response = admin.get(LEADS)
    assert response.status_code == 200
    assert len(group_checks(captured)) == 1


@pytest.mark.django_db
def test_joining_the_crm_admins_is_seen_by_the_same_user_object(db):
    user = UserFactory()
    assert user_sees_everything(user) is False
    user.groups.add(Group.objects.get_or_create(name=CRM_ADMIN_GROUP)[0])
    assert user_sees_everything(user) is True
    user.groups.clear()
    assert user_sees_everything(user) is False


def test_the_row_checkbox_is_djangos_html():
    from django.utils import translation

    model_admin = admin.site._registry[Lead]
    leads = (
        Lead(pk=5, name='Acme <b>"big"</b> & co'),
        Lead(pk=12, name="Plain"),
        Lead(pk=7, name="O'Hara {0} {}"),
    )
    for language in ("en-us", "de", "ja"):
        with translation.override(language):
            for lead in leads:
                assert model_admin.action_checkbox(lead) == ModelAdmin.action_checkbox(model_admin, lead)


@pytest.mark.django_db
def test_a_read_marks_no_one_sticky_without_a_replica(crm_admin, settings):
    """With the throttles' counters in the database cache, each API read wrote them, which counted as
    the request's write and made its user "sticky" (another cache write) though there is no replica."""
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "crm_cache"}
    }
    call_command("createcachetable", verbosity=0)  # in the test's transaction: rolled back after it
    api = APIClient()
    api.force_authenticate(crm_admin)
    assert api.get("/api/v1/crm/leads/").status_code == 200
    assert cache.get(f"crm:replica:sticky:{crm_admin.pk}") is None
    assert cache.get(f"throttle_user_{crm_admin.pk}")  # the throttle did write its counter there
