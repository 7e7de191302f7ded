"""API clients and helpers. ``api`` is an API client as the ``crm_admin`` persona (tests/conftest.py);
besides the personas: ``no_permission_api`` (logged in, no CRM permission), ``read_only_api`` (may view
everything, change nothing) and ``anon`` (not logged in)."""

import pytest
from django.contrib.auth.models import Permission
from rest_framework.test import APIClient

from tests.factories import UserFactory

API = "/api/v1/crm/"


def url(path: str) -> str:
    return f"{API}{path}"


def grant(user, *codenames: str):
    """Give ``user`` permissions by codename ("view_lead"); returns a fresh copy (perm caches reset)."""
    user.user_permissions.add(*Permission.objects.filter(codename__in=codenames))
    return type(user).objects.get(pk=user.pk)


@pytest.fixture
def api(crm_admin):
    """The CRM Admin sees every record and holds every model permission (visibility by role is
    tested in tests/security)."""
    client = APIClient()
    client.force_authenticate(crm_admin)
    return client


@pytest.fixture
def anon():
    return APIClient()


@pytest.fixture
def no_permission_api(db):
    """Logged in, but without any CRM permission."""
    client = APIClient()
    client.force_authenticate(UserFactory(username="no_permissions"))
    return client


@pytest.fixture
def read_only_api(db):
    """May read everything, change nothing."""
    user = UserFactory(username="read_only")
    user = grant(
        user,
        *(
            f"view_{model}"
            for model in (
                "lead",
                "opportunity",
                "account",
                "contact",
                "activity",
                "pipeline",
                "stage",
                "tag",
                "lostreason",
            )
        ),
    )
    client = APIClient()
    client.force_authenticate(user)
    return client
